"""answering models seen per AI system (governance: re-assessment when a new model answers)

``models_seen``: one row per (system_id, model) with when it was first and last seen and a
count of observations. A model answering for a system that no approved risk assessment
covers makes the system due for re-assessment.

Revision ID: 0007
Revises: 0006
"""
from alembic import op
import sqlalchemy as sa


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table('models_seen',
    sa.Column('system_id', sa.String(length=128), nullable=False),
    sa.Column('model', sa.String(length=256), nullable=False),
    sa.Column('first_seen', _TS, nullable=False),
    sa.Column('last_seen', _TS, nullable=False),
    sa.Column('count', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.PrimaryKeyConstraint('system_id', 'model'))


def downgrade() -> None:
    op.drop_table('models_seen')
