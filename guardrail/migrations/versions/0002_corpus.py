"""corpora and works

Revision ID: 0002
Revises: 0001
"""
from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    op.create_table('corpora',
    sa.Column('id', _ID, autoincrement=True, nullable=False),
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('rights_holder', sa.String(length=256), nullable=False),
    sa.Column('license', sa.String(length=256), nullable=False),
    sa.Column('source_url', sa.String(length=1024), nullable=True),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('corpora', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_corpora_name'), ['name'], unique=True)

    op.create_table('corpus_works',
    sa.Column('id', _ID, autoincrement=True, nullable=False),
    sa.Column('corpus_id', _ID, nullable=False),
    sa.Column('title', sa.String(length=512), nullable=False),
    sa.Column('external_id', sa.String(length=256), nullable=True),
    sa.Column('source_url', sa.String(length=1024), nullable=True),
    sa.Column('rights_holder', sa.String(length=256), nullable=True),
    sa.Column('license', sa.String(length=256), nullable=True),
    sa.Column('content_sha256', sa.String(length=64), nullable=False),
    sa.Column('chars', sa.Integer(), nullable=False),
    sa.Column('windows', sa.Integer(), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('meta', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('indexed_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['corpus_id'], ['corpora.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('corpus_id', 'content_sha256', name='uq_work_content')
    )
    with op.batch_alter_table('corpus_works', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_corpus_works_corpus_id'), ['corpus_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_corpus_works_content_sha256'), ['content_sha256'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('corpus_works', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_corpus_works_content_sha256'))
        batch_op.drop_index(batch_op.f('ix_corpus_works_corpus_id'))
    op.drop_table('corpus_works')
    with op.batch_alter_table('corpora', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_corpora_name'))
    op.drop_table('corpora')
