"""people, their sessions and API tokens, client keys in the store; review events sealed

``incident_reviews`` rows become links of the incident chain (``seq``, ``prev_hash``,
``record_hash``) and name the person (``person_id``, ``role``); ``kind`` tells a decision
from an access to the incident's content. Rows written before this keep no seal.

Revision ID: 0005
Revises: 0004
"""
from alembic import op
import sqlalchemy as sa


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')
_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table('people',
    sa.Column('id', _ID, autoincrement=True, nullable=False),
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('name_key', sa.String(length=128), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('password_hash', sa.String(length=255), nullable=True),
    sa.Column('disabled', sa.Boolean(), nullable=False),
    sa.Column('created_at', _TS, nullable=False),
    sa.Column('password_changed_at', _TS, nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('name_key'),
    )
    op.create_table('person_tokens',
    sa.Column('id', _ID, autoincrement=True, nullable=False),
    sa.Column('person_id', _ID, nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('created_at', _TS, nullable=False),
    sa.Column('revoked_at', _TS, nullable=True),
    sa.ForeignKeyConstraint(['person_id'], ['people.id']),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('token_hash'),
    )
    op.create_index('ix_person_tokens_person_id', 'person_tokens', ['person_id'])
    op.create_table('person_sessions',
    sa.Column('id_hash', sa.String(length=64), nullable=False),
    sa.Column('person_id', _ID, nullable=False),
    sa.Column('csrf_token', sa.String(length=64), nullable=False),
    sa.Column('created_at', _TS, nullable=False),
    sa.Column('expires_at', _TS, nullable=False),
    sa.Column('last_seen_at', _TS, nullable=False),
    sa.Column('revoked_at', _TS, nullable=True),
    sa.ForeignKeyConstraint(['person_id'], ['people.id']),
    sa.PrimaryKeyConstraint('id_hash'),
    )
    op.create_index('ix_person_sessions_person_id', 'person_sessions', ['person_id'])
    op.create_table('client_keys',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('key_hash', sa.String(length=64), nullable=False),
    sa.Column('tenant', sa.String(length=128), nullable=False),
    sa.Column('policy', sa.String(length=128), nullable=True),
    sa.Column('created_at', _TS, nullable=False),
    sa.Column('revoked_at', _TS, nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('key_hash'),
    )
    with op.batch_alter_table('incident_reviews') as batch:
        batch.add_column(sa.Column('kind', sa.String(length=16), nullable=False,
                                   server_default='decision'))
        batch.add_column(sa.Column('person_id', sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column('role', sa.String(length=16), nullable=True))
        batch.add_column(sa.Column('seq', sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column('prev_hash', sa.String(length=64), nullable=True))
        batch.add_column(sa.Column('record_hash', sa.String(length=64), nullable=True))
        batch.create_unique_constraint('uq_incident_reviews_seq', ['seq'])


def downgrade() -> None:
    with op.batch_alter_table('incident_reviews') as batch:
        batch.drop_constraint('uq_incident_reviews_seq', type_='unique')
        for col in ('record_hash', 'prev_hash', 'seq', 'role', 'person_id', 'kind'):
            batch.drop_column(col)
    op.drop_table('client_keys')
    op.drop_index('ix_person_sessions_person_id', table_name='person_sessions')
    op.drop_table('person_sessions')
    op.drop_index('ix_person_tokens_person_id', table_name='person_tokens')
    op.drop_table('person_tokens')
    op.drop_table('people')
