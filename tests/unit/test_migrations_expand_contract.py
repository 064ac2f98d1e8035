"""Expand, then contract (docs/operations/migrations.md): from 0012 on, every migration says
which phase it is, and an expand migration does nothing an older node still running could
trip over.

Two independent checks, so that neither can be talked round alone:
- the SQL the migration emits on PostgreSQL, rendered by alembic's offline mode;
- its source: ``op`` calls and SQL strings, including any in branches the offline rendering
  does not take (a migration that tests ``context.is_offline_mode()``).
The checker is run on scratch migrations as well, to show that it refuses what it must.
"""

from __future__ import annotations

import ast
import inspect
import io
import re
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from alembic.script import Script, ScriptDirectory

from idp.store.migrate import MIGRATIONS

# Written before the rule: exempt by number, so that a new migration is never exempt by accident.
EXEMPT = {f"{n:04d}" for n in range(1, 12)}
PHASES = ("expand", "contract")

# Renders migrations for PostgreSQL without a database (alembic's offline mode).
OFFLINE_ENV = """\
from alembic import context

context.configure(dialect_name="postgresql", literal_binds=True, transactional_ddl=True)
with context.begin_transaction():
    context.run_migrations()
"""

# What an expand migration may not do, in PostgreSQL's SQL (case-insensitive, spaces folded).
FORBIDDEN_SQL = {
    "drops": re.compile(r"\bDROP\b"),
    "renames": re.compile(r"\bRENAME\b"),
    "changes a column's type": re.compile(r"\bALTER\s+COLUMN\s+\S+\s+(SET\s+DATA\s+)?TYPE\b"),
    "makes a column NOT NULL": re.compile(r"\bSET\s+NOT\s+NULL\b"),
}
ADD_COLUMN = re.compile(r"\bADD\s+(?:COLUMN\s+)?(?!CONSTRAINT\b)(.*?)(?=,\s*ADD\b|$)")

# The same in alembic's operations (``op.`` or a batch).
FORBIDDEN_OPS = {
    "drop_table",
    "drop_column",
    "drop_index",
    "drop_constraint",
    "drop_table_comment",
    "drop_column_comment",
    "rename_table",
}
FORBIDDEN_ALTER_KEYWORDS = {"nullable", "type_", "new_column_name"}


def offline_config(script_location: Path, versions: Path, out: io.StringIO) -> Config:
    script_location.mkdir(parents=True, exist_ok=True)
    (script_location / "env.py").write_text(OFFLINE_ENV)
    cfg = Config(output_buffer=out)
    cfg.set_main_option("script_location", str(script_location))
    cfg.set_main_option("path_separator", "os")
    cfg.set_main_option("version_locations", str(versions))
    return cfg


def sql_problems(sql: str) -> list[str]:
    """What the rendered SQL does that an expand migration may not."""
    out = []
    for raw in sql.split(";"):
        statement = " ".join(re.sub(r"--[^\n]*", "", raw).split()).upper()
        for what, pattern in FORBIDDEN_SQL.items():
            if pattern.search(statement):
                out.append(f"{what}: {statement[:160]}")
        if statement.startswith("ALTER TABLE"):
            for column in ADD_COLUMN.findall(statement):
                if "NOT NULL" in column and "DEFAULT" not in column:
                    out.append(f"adds a NOT NULL column without a default: {statement[:160]}")
    return out


def source_problems(source: str) -> list[str]:
    """What the migration's code asks for that an expand migration may not, on any branch."""
    out = []
    tree = ast.parse(source)
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.FunctionDef | ast.ClassDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    downgrade = next(
        (n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "downgrade"), None
    )
    skip = {id(n) for n in ast.walk(downgrade)} if downgrade else set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue  # undoing an expand drops what it added
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            name, keywords = node.func.attr, {k.arg for k in node.keywords}
            if name in FORBIDDEN_OPS:
                out.append(f"calls {name}")
            if name == "alter_column" and keywords & FORBIDDEN_ALTER_KEYWORDS:
                named = sorted(k for k in keywords & FORBIDDEN_ALTER_KEYWORDS if k)
                out.append(f"alter_column with {named}")
            if name == "add_column":
                for column in node.args[1:] or node.args[:1]:
                    if _not_null_without_default(column):
                        out.append("add_column of a NOT NULL column without server_default")
        if (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and id(node) not in docstrings
        ):
            out.extend(f"SQL text: {p}" for p in sql_problems(node.value))
    return out


def _not_null_without_default(column: ast.expr) -> bool:
    if not isinstance(column, ast.Call):
        return False
    keywords = {k.arg: k.value for k in column.keywords}
    nullable = keywords.get("nullable")
    not_null = isinstance(nullable, ast.Constant) and nullable.value is False
    return not_null and "server_default" not in keywords


def problems_of(cfg: Config, script: Script) -> list[str]:
    """Why ``script`` breaks the rule; empty when it keeps it."""
    phase = getattr(script.module, "phase", None)
    if phase not in PHASES:
        return [f'declares no module-level phase = "expand" or "contract" (found {phase!r})']
    if phase == "contract":
        return []
    out = cfg.output_buffer
    assert isinstance(out, io.StringIO)
    out.seek(0)
    out.truncate()
    previous = script.down_revision or "base"
    assert isinstance(previous, str), "a merge migration: check it by hand"
    try:
        command.upgrade(cfg, f"{previous}:{script.revision}", sql=True)
    except Exception as exc:  # noqa: BLE001 - any failure to render is the finding
        return [f"cannot be rendered offline ({exc.__class__.__name__}: {exc}); do data "
                "changes with op.execute, so that the SQL can be reviewed"]  # fmt: skip
    rendered = [f"SQL: {p}" for p in sql_problems(out.getvalue())]
    return rendered + [f"source: {p}" for p in source_problems(inspect.getsource(script.module))]


def scripts(cfg: Config) -> list[Script]:
    return list(reversed(list(ScriptDirectory.from_config(cfg).walk_revisions())))


def test_every_migration_after_0011_keeps_expand_then_contract(tmp_path: Path) -> None:
    cfg = offline_config(tmp_path / "offline", MIGRATIONS / "versions", io.StringIO())
    found = scripts(cfg)
    assert EXEMPT <= {s.revision for s in found}, "the exempt migrations are all still there"
    checked = {s.revision: problems_of(cfg, s) for s in found if s.revision not in EXEMPT}
    assert {rev: p for rev, p in checked.items() if p} == {}


SCRATCH_BASE = '''\
"""scratch base"""
import sqlalchemy as sa
from alembic import op

revision, down_revision = "s1", None
phase = "expand"


def upgrade() -> None:
    op.create_table(
        "things",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(50), nullable=False),
        sa.Column("old", sa.String(50)),
    )
'''

SCRATCH = {
    "drops a column": 'op.drop_column("things", "old")',
    "drops a column in SQL": 'op.execute("ALTER TABLE things DROP COLUMN old")',
    "drops a column online only": (
        "from alembic import context\n"
        "    if not context.is_offline_mode():\n"
        '        op.drop_column("things", "old")'
    ),
    "renames a column": 'op.alter_column("things", "old", new_column_name="older")',
    "renames a table": 'op.rename_table("things", "items")',
    "changes a type": 'op.alter_column("things", "old", type_=sa.Text())',
    "sets NOT NULL": 'op.alter_column("things", "old", nullable=False)',
    "adds a NOT NULL column": (
        'op.add_column("things", sa.Column("n", sa.Integer(), nullable=False))'
    ),
    "has no phase": "",
}

GOOD = (
    'op.add_column("things", sa.Column("note", sa.String(50)))\n'
    '    op.add_column("things", sa.Column("n", sa.Integer(), nullable=False,'
    ' server_default="0"))\n'
    '    op.create_index("ix_things_note", "things", ["note"])\n'
    '    op.create_table("more", sa.Column("id", sa.Integer(), primary_key=True, nullable=False))'
)


def scratch_migration(body: str, phase: str | None) -> str:
    """A migration s2 on top of s1 whose upgrade() runs ``body`` (lines indented by 4)."""
    lines = [
        '"""scratch"""',
        "import sqlalchemy as sa",
        "from alembic import op",
        "",
        'revision, down_revision = "s2", "s1"',
        f'phase = "{phase}"' if phase else "",
        "",
        "",
        "def upgrade() -> None:",
        f"    {body}",
        "",
        "",
        "def downgrade() -> None:",
        '    op.drop_table("more")',
    ]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("case", sorted(SCRATCH))
def test_the_check_refuses_an_expand_migration_that(tmp_path: Path, case: str) -> None:
    versions = tmp_path / "versions"
    versions.mkdir()
    (versions / "s1_base.py").write_text(SCRATCH_BASE)
    body = SCRATCH[case] or GOOD
    (versions / "s2_scratch.py").write_text(
        scratch_migration(body, None if case == "has no phase" else "expand")
    )
    cfg = offline_config(tmp_path / "offline", versions, io.StringIO())
    found = problems_of(cfg, scripts(cfg)[-1])
    assert found, f"the check let an expand migration that {case} through"
    if case != "has no phase":  # each check refuses it on its own (the SQL: unless hidden)
        assert any(p.startswith("source: ") for p in found), found
        hidden = case == "drops a column online only"
        assert hidden != any(p.startswith("SQL: ") for p in found), found


def test_the_check_lets_an_additive_migration_through_and_a_contract_one(tmp_path: Path) -> None:
    versions = tmp_path / "versions"
    versions.mkdir()
    (versions / "s1_base.py").write_text(SCRATCH_BASE)
    (versions / "s2_scratch.py").write_text(scratch_migration(GOOD, "expand"))
    cfg = offline_config(tmp_path / "offline", versions, io.StringIO())
    assert problems_of(cfg, scripts(cfg)[-1]) == []
    (versions / "s2_scratch.py").write_text(
        scratch_migration(SCRATCH["drops a column"], "contract")
    )
    cfg = offline_config(tmp_path / "offline2", versions, io.StringIO())
    assert problems_of(cfg, scripts(cfg)[-1]) == []
