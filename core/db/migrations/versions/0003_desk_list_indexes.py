"""visits: indexes for the desk lists' today-only halves (Tunda at meja 2, observation at meja 4)

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27 05:00:00

Hand-written. Meja 2's list shows today's Tunda (``screened_at`` from the start of the local day) and
meja 4's today's observations (``vaccinated_at``); with only ``(faskes_code, service_date)`` to go on,
both read every visit the faskes ever had. ``CREATE INDEX`` holds off writes to ``visits`` while it
builds: on a large live PL, build them first with ``CREATE INDEX CONCURRENTLY`` under the same names
(docs/scaling.md, "Table size"); this migration then finds them and only records the revision.
"""

from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_visits_faskes_screened', 'visits', ['faskes_code', 'screened_at'], if_not_exists=True)
    op.create_index('ix_visits_faskes_vaccinated', 'visits', ['faskes_code', 'vaccinated_at'], if_not_exists=True)


def downgrade() -> None:
    op.drop_index('ix_visits_faskes_vaccinated', table_name='visits')
    op.drop_index('ix_visits_faskes_screened', table_name='visits')
