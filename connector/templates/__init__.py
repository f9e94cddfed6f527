"""What ships inside the package for a new project: the definitions and the example config.

These files are the one copy in the repository. ``segsync init`` writes them
into a new project (``config.example.toml`` becomes ``config.toml``, the
mappings go to ``mappings/``, ``gitignore`` to ``.gitignore``); the built-in
:data:`MAPPINGS` are also the default of ``sync.mappings``, so a config that
names no mapping (such as the one ``segsync sandbox`` writes) uses them.
"""

from __future__ import annotations

from pathlib import Path

DIR = Path(__file__).resolve().parent
"""The folder holding the templates (a real directory in an installed package)."""

CONFIG_EXAMPLE = DIR / "config.example.toml"
"""Every setting with its default and a comment; ``segsync init`` writes it as config.toml."""

GITIGNORE = DIR / "gitignore"
"""The new project's ``.gitignore``: the state store and secrets stay out of version control."""

ACCOUNTS = DIR / "mappings" / "accounts.toml"
"""The shipped account definition (it teaches the mapping language in its comments)."""

CONTACTS = DIR / "mappings" / "contacts.toml"
"""The shipped contact definition (personas, and the account's segment and tier inherited)."""

LEADS = DIR / "mappings" / "leads.toml"
"""The shipped Salesforce lead definition (segment and tier from the lead's own company
fields, persona from the title); opt-in: list it in ``sync.mappings``."""

MAPPINGS = (ACCOUNTS, CONTACTS)
"""The built-in definitions a config without ``sync.mappings`` uses: accounts and contacts.

Leads are opt-in (:data:`LEADS` in ``sync.mappings``): provisioning them creates
fields on the org's Lead object, which an admin should ask for."""

SAMPLES = DIR.parent / "samples"
"""Small synthetic exports of both CRMs, for trying ``preview``, ``explain`` and ``diff``."""
