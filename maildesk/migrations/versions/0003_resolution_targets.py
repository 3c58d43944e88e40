"""tickets: resolution targets per priority (due, warning, paused time)

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import maildesk.adapters.db_models

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

_STAMPS = ('resolve_warn_at', 'resolve_due_at', 'resolve_warned_at', 'resolve_breached_at')


def upgrade() -> None:
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        for name in _STAMPS:
            batch_op.add_column(sa.Column(name, maildesk.adapters.db_models.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('resolve_paused_hours', sa.Float(), nullable=False, server_default='0'))
        batch_op.create_index('ix_tickets_resolve_warn', ['resolve_warned_at', 'resolve_warn_at'], unique=False)
        batch_op.create_index('ix_tickets_resolve_due', ['resolve_breached_at', 'resolve_due_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.drop_index('ix_tickets_resolve_due')
        batch_op.drop_index('ix_tickets_resolve_warn')
        batch_op.drop_column('resolve_paused_hours')
        for name in reversed(_STAMPS):
            batch_op.drop_column(name)
