"""visits: partial indexes for unfinished visits (the support API's stuck list)

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27 06:00:00

Hand-written. The stuck list (visits still waiting for a desk, or vaccinated without an observation, after
their day) had only the status to go on, which no index holds: nationally it read every visit in PL. These
two indexes hold only the rows in those three statuses (a visit passes through them on its way and leaves
them by the end of its day), by day for the national list and by faskes for a district's. On a large live
PL build them first with ``CREATE INDEX CONCURRENTLY`` under the same names and predicate (docs/scaling.md,
"Table size"); this migration then finds them and only records the revision.
"""

from alembic import op
import sqlalchemy as sa

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

UNFINISHED = sa.text("status IN ('menunggu_skrining', 'menunggu_vaksinasi', 'observasi')")


def upgrade() -> None:
    for name, columns in (
        ('ix_visits_unfinished_day', ['service_date', 'faskes_code']),
        ('ix_visits_unfinished_faskes', ['faskes_code', 'service_date']),
    ):
        op.create_index(
            name, 'visits', columns, if_not_exists=True, sqlite_where=UNFINISHED, postgresql_where=UNFINISHED
        )


def downgrade() -> None:
    op.drop_index('ix_visits_unfinished_faskes', table_name='visits')
    op.drop_index('ix_visits_unfinished_day', table_name='visits')
