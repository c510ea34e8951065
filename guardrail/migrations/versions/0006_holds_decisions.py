"""held responses, webhook deliveries, one review vocabulary, people's language and time zone

``held_responses``: the encrypted body of a response held for review (Fernet token; the key
id says which key of the keyring sealed it) and its state. ``webhook_attempts``: every
delivery attempt of a decision notice. Incidents gain ``assignee`` and ``decided_at``; people
gain ``locale`` and ``timezone``.

Review statuses become one vocabulary: open (needs a person), escalated, awaiting_second,
released, rejected, not_required. Existing rows are mapped: pending_review and in_review to
open, confirmed and resolved to rejected (the intervention was upheld), cleared to released
(the intervention was not needed); scanner failures and redactions to not_required. Sealed
review events keep the words they were written with; ``verify`` reads them through the same
map (:data:`guardrail.review.decisions.LEGACY_STATUS`).

Revision ID: 0006
Revises: 0005
"""
from alembic import op
import sqlalchemy as sa


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')
_TS = sa.DateTime(timezone=True)

_MAP = {'pending_review': 'open', 'in_review': 'open', 'confirmed': 'rejected',
        'resolved': 'rejected', 'cleared': 'released'}


def upgrade() -> None:
    op.create_table('held_responses',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('created_at', _TS, nullable=False),
    sa.Column('expires_at', _TS, nullable=False),
    sa.Column('tenant', sa.String(length=128), nullable=True),
    sa.Column('api_key_id', sa.String(length=64), nullable=True),
    sa.Column('policy_name', sa.String(length=128), nullable=False),
    sa.Column('request_id', sa.String(length=64), nullable=False),
    sa.Column('route', sa.String(length=128), nullable=False),
    sa.Column('incident_ids', sa.JSON(), nullable=False),
    sa.Column('status', sa.String(length=32), nullable=False),
    sa.Column('key_id', sa.String(length=32), nullable=False),
    sa.Column('ciphertext', sa.LargeBinary(), nullable=True),
    sa.Column('content_sha256', sa.String(length=64), nullable=False),
    sa.Column('media_type', sa.String(length=64), nullable=False),
    sa.Column('decided_at', _TS, nullable=True),
    sa.Column('decided_by', sa.String(length=128), nullable=True),
    sa.PrimaryKeyConstraint('id'))
    with op.batch_alter_table('held_responses') as batch:
        batch.create_index('ix_held_responses_status_expires', ['status', 'expires_at'])
        batch.create_index('ix_held_responses_request_id', ['request_id'])
    op.create_table('webhook_attempts',
    sa.Column('id', _ID, autoincrement=True, nullable=False),
    sa.Column('delivery_id', sa.String(length=40), nullable=False),
    sa.Column('response_id', sa.String(length=40), nullable=False),
    sa.Column('api_key_id', sa.String(length=64), nullable=True),
    sa.Column('url', sa.String(length=2048), nullable=False),
    sa.Column('attempt', sa.Integer(), nullable=False),
    sa.Column('at', _TS, nullable=False),
    sa.Column('status_code', sa.Integer(), nullable=True),
    sa.Column('error', sa.String(length=512), nullable=True),
    sa.Column('ok', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('id'))
    with op.batch_alter_table('webhook_attempts') as batch:
        batch.create_index('ix_webhook_attempts_response_id', ['response_id'])
    with op.batch_alter_table('incidents') as batch:
        batch.add_column(sa.Column('assignee', sa.String(length=128), nullable=True))
        batch.add_column(sa.Column('decided_at', _TS, nullable=True))
    with op.batch_alter_table('people') as batch:
        batch.add_column(sa.Column('locale', sa.String(length=8), nullable=True))
        batch.add_column(sa.Column('timezone', sa.String(length=64), nullable=True))
    incidents = sa.table('incidents', sa.column('review_status', sa.String),
                         sa.column('kind', sa.String), sa.column('action', sa.String))
    for old, new in _MAP.items():
        op.execute(incidents.update().where(incidents.c.review_status == old)
                   .values(review_status=new))
    op.execute(incidents.update()
               .where(incidents.c.review_status == 'open')
               .where(sa.or_(incidents.c.kind.in_(['scanner_failure', 'monitor_failure']),
                             incidents.c.action.in_(['redact', 'allow'])))
               .values(review_status='not_required'))


def downgrade() -> None:
    incidents = sa.table('incidents', sa.column('review_status', sa.String))
    for new, old in (('open', 'pending_review'), ('not_required', 'open'),
                     ('awaiting_second', 'pending_review'), ('rejected', 'confirmed'),
                     ('released', 'cleared')):
        op.execute(incidents.update().where(incidents.c.review_status == new)
                   .values(review_status=old))
    with op.batch_alter_table('people') as batch:
        batch.drop_column('timezone')
        batch.drop_column('locale')
    with op.batch_alter_table('incidents') as batch:
        batch.drop_column('decided_at')
        batch.drop_column('assignee')
    op.drop_table('webhook_attempts')
    op.drop_table('held_responses')
