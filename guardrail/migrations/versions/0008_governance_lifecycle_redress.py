"""incident lifecycle and redress intakes (governance, issue 14)

``incident_lifecycle``: one row per incident in the lifecycle (triage, owner_assigned,
remediation, resolved, closed), its remediation owner, serious-incident kind, when it was
flagged serious and which reports were made; a projection of sealed chain events (kinds
lifecycle, serious, report), checked by ``guardrail incidents verify``.

``redress``: one row per intake, by acknowledgement id: its own incident, the incidents it
was linked to, the complainant's text and optional contact (removed by ``guardrail
incidents purge`` past retention), status and the published answer (whose SHA-256 is sealed
in a ``redress`` event).

Revision ID: 0008
Revises: 0007
"""
from alembic import op
import sqlalchemy as sa


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table('incident_lifecycle',
    sa.Column('incident_id', sa.String(length=40), nullable=False),
    sa.Column('status', sa.String(length=32), nullable=False),
    sa.Column('owner', sa.String(length=128), nullable=True),
    sa.Column('serious_kind', sa.String(length=32), nullable=True),
    sa.Column('serious_at', _TS, nullable=True),
    sa.Column('reported', sa.JSON(), nullable=False),
    sa.Column('updated_at', _TS, nullable=False),
    sa.Column('updated_by', sa.String(length=128), nullable=False),
    sa.PrimaryKeyConstraint('incident_id'))
    with op.batch_alter_table('incident_lifecycle') as batch:
        batch.create_index('ix_incident_lifecycle_status', ['status'])
        batch.create_index('ix_incident_lifecycle_serious_kind', ['serious_kind'])
    op.create_table('redress',
    sa.Column('ack_id', sa.String(length=40), nullable=False),
    sa.Column('created_at', _TS, nullable=False),
    sa.Column('incident_id', sa.String(length=40), nullable=False),
    sa.Column('linked_incident_ids', sa.JSON(), nullable=False),
    sa.Column('given', sa.JSON(), nullable=True),
    sa.Column('channel', sa.String(length=8), nullable=False),
    sa.Column('language', sa.String(length=8), nullable=True),
    sa.Column('text', sa.Text(), nullable=True),
    sa.Column('contact', sa.String(length=256), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('answer', sa.Text(), nullable=True),
    sa.Column('answer_sha256', sa.String(length=64), nullable=True),
    sa.Column('answered_by', sa.String(length=128), nullable=True),
    sa.Column('answered_at', _TS, nullable=True),
    sa.Column('purged_at', _TS, nullable=True),
    sa.PrimaryKeyConstraint('ack_id'))
    with op.batch_alter_table('redress') as batch:
        batch.create_index('ix_redress_incident_id', ['incident_id'])


def downgrade() -> None:
    op.drop_table('redress')
    op.drop_table('incident_lifecycle')
