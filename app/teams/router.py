"""Teams API: the caller's own team, and organisers' team and token management."""

from __future__ import annotations

from fastapi import APIRouter

from app.deps import CurrentTeam, IdPath, OrganiserTeam, SessionDep, SettingsDep
from app.errors import NotFound, error_responses
from app.models import Team
from app.phases.deps import ChallengeNow
from app.phases.selection import team_selections
from app.submissions.service import quota
from app.teams import repository as repo
from app.teams import service
from app.teams.schemas import (
    IssuedTokenOut,
    MeOut,
    SelectedOut,
    TeamCreate,
    TeamCreated,
    TeamOut,
    TokenOut,
)

router = APIRouter(tags=["teams"])


@router.get("/me", response_model=MeOut,
            summary="The caller's team, its quota in the phase open now, its final selection",
            responses=error_responses(401))
def me(team: CurrentTeam, session: SessionDep, settings: SettingsDep,
       moment: ChallengeNow) -> MeOut:
    return MeOut(**service.team_out(team).model_dump(),
                 quota=quota(session, settings, team, schedule=moment.schedule, now=moment.now),
                 selections=[SelectedOut(submission_id=sid, country=country, auto=auto)
                             for sid, country, auto in team_selections(session, team.id)],
                 selection_limit=moment.schedule.selection_limit, selections_locked=moment.locked)


@router.get("/teams", response_model=list[TeamOut], summary="Organisers: every team",
            responses=error_responses(401, 403))
def list_teams(organiser: OrganiserTeam, session: SessionDep) -> list[TeamOut]:
    return [service.team_out(t) for t in repo.all_teams(session)]


@router.post("/teams", status_code=201, response_model=TeamCreated,
             summary="Organisers: create a team; its first token is shown once",
             responses=error_responses(401, 403, 409, 422))
def create_team(body: TeamCreate, organiser: OrganiserTeam, session: SessionDep) -> TeamCreated:
    team, issued = service.create_team(session, organiser, body.name,
                                       organiser=body.is_organiser, baseline=body.is_baseline)
    session.commit()
    return TeamCreated(team=service.team_out(team), token=issued.secret)


@router.get("/teams/{team_id}/tokens", response_model=list[TokenOut],
            summary="Organisers: a team's tokens (prefixes only)",
            responses=error_responses(401, 403, 404))
def list_tokens(team_id: IdPath, organiser: OrganiserTeam, session: SessionDep) -> list[TokenOut]:
    if session.get(Team, team_id) is None:
        raise NotFound(f"no team {team_id}")
    return [service.token_out(t) for t in repo.tokens_of(session, team_id)]


@router.post("/teams/{team_id}/tokens", status_code=201, response_model=IssuedTokenOut,
             summary="Organisers: issue another token for a team (shown once)",
             responses=error_responses(401, 403, 404))
def create_token(team_id: IdPath, organiser: OrganiserTeam, session: SessionDep) -> IssuedTokenOut:
    issued = service.create_token(session, organiser, team_id)
    session.commit()
    return IssuedTokenOut(token=issued.secret, token_info=service.token_out(issued.token))


@router.post("/tokens/{token_id}/revoke", response_model=TokenOut,
             summary="Organisers: revoke a token (at once, for good)",
             responses=error_responses(401, 403, 404))
def revoke_token(token_id: IdPath, organiser: OrganiserTeam, session: SessionDep) -> TokenOut:
    token = service.revoke_token(session, organiser, token_id)
    session.commit()
    return service.token_out(token)
