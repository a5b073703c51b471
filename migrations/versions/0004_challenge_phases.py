"""challenge schedule, final selection, ladder decisions, the frozen final board, withdrawal

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 15:20:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('challenge_state', schema=None) as batch_op:
        batch_op.add_column(sa.Column('schedule_toml', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('locked_at', sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table('submission', schema=None) as batch_op:
        batch_op.add_column(sa.Column('withdrawn', sa.Boolean(), nullable=False,
                                      server_default=sa.false()))
    op.create_table(
        'selection',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('submission_id', sa.Integer(), nullable=False),
        sa.Column('team_id', sa.Integer(), nullable=False),
        sa.Column('country', sa.String(length=2), nullable=False),
        sa.Column('auto', sa.Boolean(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['submission_id'], ['submission.id'], ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['team_id'], ['team.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('submission_id'),
    )
    with op.batch_alter_table('selection', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_selection_team_id'), ['team_id'], unique=False)
    op.create_table(
        'ladder_decision',
        sa.Column('submission_id', sa.Integer(), nullable=False),
        sa.Column('team_id', sa.Integer(), nullable=False),
        sa.Column('country', sa.String(length=2), nullable=False),
        sa.Column('released', sa.Boolean(), nullable=False),
        sa.Column('p_value', sa.Float(), nullable=True),
        sa.Column('best_id', sa.Integer(), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['submission_id'], ['submission.id'], ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['team_id'], ['team.id']),
        sa.PrimaryKeyConstraint('submission_id'),
    )
    with op.batch_alter_table('ladder_decision', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_ladder_decision_team_id'), ['team_id'],
                              unique=False)
    op.create_table(
        'final_entry',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('team_id', sa.Integer(), nullable=False),
        sa.Column('country', sa.String(length=2), nullable=False),
        sa.Column('submission_id', sa.Integer(), nullable=False),
        sa.Column('method', sa.String(length=100), nullable=False),
        sa.Column('auto', sa.Boolean(), nullable=False),
        sa.Column('scorer_version', sa.String(length=32), nullable=False),
        sa.Column('scores', sa.JSON(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['submission_id'], ['submission.id'], ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['team_id'], ['team.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('team_id', 'country', name='uq_final_entry_team_country'),
    )


def downgrade() -> None:
    op.drop_table('final_entry')
    with op.batch_alter_table('ladder_decision', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_ladder_decision_team_id'))
    op.drop_table('ladder_decision')
    with op.batch_alter_table('selection', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_selection_team_id'))
    op.drop_table('selection')
    with op.batch_alter_table('submission', schema=None) as batch_op:
        batch_op.drop_column('withdrawn')
    with op.batch_alter_table('challenge_state', schema=None) as batch_op:
        batch_op.drop_column('locked_at')
        batch_op.drop_column('schedule_toml')
