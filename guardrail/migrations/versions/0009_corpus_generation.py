"""corpus generation (issue 15: every node serves the same corpora)

``corpus_generation``: one row (id 1) whose ``generation`` is bumped in the same
transaction as every registration or deletion of works (and every corpus change); a node
compares it with the generation its local index recorded and syncs when they differ.
``store_id`` is random per database, so an index directory built from another database is
rebuilt rather than taken for current.

Revision ID: 0009
Revises: 0008
"""
import uuid
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    table = op.create_table('corpus_generation',
    sa.Column('id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('store_id', sa.String(length=32), nullable=False),
    sa.Column('generation', sa.BigInteger(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id'))
    op.bulk_insert(table, [{'id': 1, 'store_id': uuid.uuid4().hex, 'generation': 0,
                            'updated_at': datetime.now(UTC)}])


def downgrade() -> None:
    op.drop_table('corpus_generation')
