"""accounts.bot_key: the bot a person last wrote to (several bots in one deployment)

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27 06:00:00

Hand-written. A nullable column without a default: PostgreSQL adds it without rewriting the table
(a catalogue change, instant even with millions of rows), SQLite with a plain ALTER TABLE ADD COLUMN
(batch mode only recreates the table on downgrade, where SQLite cannot drop a column in place).
"""

from alembic import op
import sqlalchemy as sa

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('accounts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('bot_key', sa.String(length=32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('accounts', schema=None) as batch_op:
        batch_op.drop_column('bot_key')
