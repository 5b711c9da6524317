"""Alembic, imported only when a database really needs migrating (it is slow to import)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from keel.store.engine import Store

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).parent / "migrations"


def _config() -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def known_revisions() -> set[str]:
    from alembic.script import ScriptDirectory

    return {script.revision for script in ScriptDirectory.from_config(_config()).walk_revisions()}


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(_config()).get_current_head()
    return str(head)


def upgrade_to_head(store: Store) -> None:
    """Apply every pending migration in one transaction."""
    from alembic import command

    config = _config()
    with store.write() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "head")
