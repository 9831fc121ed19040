"""(being written) Slack Events API at /slack/events."""

from fastapi import APIRouter

router = APIRouter()
