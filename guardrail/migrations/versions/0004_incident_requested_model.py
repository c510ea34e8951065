"""incidents: the model the client asked for, beside the one that answered

``upstream_model`` keeps its column and now holds the model the upstream's response names;
``requested_model`` is the request's ``model``. Rows written before this migration have only
``upstream_model`` (which then held the requested model) and keep verifying: an empty
``requested_model`` is left out of the sealed payload.

Revision ID: 0004
Revises: 0003
"""
from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('incidents') as batch:
        batch.add_column(sa.Column('requested_model', sa.String(length=256), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('incidents') as batch:
        batch.drop_column('requested_model')
