"""labelled outputs: how many responses went out labelled as AI-generated, per day, policy and
kind (text, notice, image), for the compliance report (guardrail/labelling/counts.py)

Revision ID: 0010
Revises: 0009
"""
from alembic import op
import sqlalchemy as sa


revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('labelled_outputs',
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('policy_name', sa.String(length=128), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('count', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('day', 'policy_name', 'kind'))


def downgrade() -> None:
    op.drop_table('labelled_outputs')
