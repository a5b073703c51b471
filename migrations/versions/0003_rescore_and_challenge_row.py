"""rescore requests; the challenge state's one row

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 11:30:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'rescore',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('submission_id', sa.Integer(), nullable=False),
        sa.Column('scorer_version', sa.String(length=32), nullable=False),
        sa.Column('state', sa.String(length=16), nullable=False),
        sa.Column('reason', sa.Text(), nullable=True),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('lease_owner', sa.String(length=100), nullable=True),
        sa.Column('lease_expires_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['submission_id'], ['submission.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
    )
    with op.batch_alter_table('rescore', schema=None) as batch_op:
        batch_op.create_index('ix_rescore_state_lease', ['state', 'lease_expires_at'],
                              unique=False)
        batch_op.create_index(batch_op.f('ix_rescore_submission_id'), ['submission_id'],
                              unique=False)
    # The challenge state is one row, created here, never on a read: two first readers could
    # otherwise insert two. An earlier read may have inserted rows already; keep the lowest.
    bind = op.get_bind()
    ids = [row[0] for row in bind.execute(sa.text('SELECT id FROM challenge_state ORDER BY id'))]
    if ids:
        bind.execute(sa.text('DELETE FROM challenge_state WHERE id <> :keep'), {'keep': ids[0]})
        bind.execute(sa.text('UPDATE challenge_state SET id = 1'))
    else:
        bind.execute(sa.text(
            'INSERT INTO challenge_state (id, revealed, revealed_at) VALUES (1, :no, NULL)'),
            {'no': False})


def downgrade() -> None:
    with op.batch_alter_table('rescore', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_rescore_submission_id'))
        batch_op.drop_index('ix_rescore_state_lease')
    op.drop_table('rescore')
