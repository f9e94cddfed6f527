"""Alembic migrations of the state store, run by :meth:`connector.store.Store.open`.

To add one, change :mod:`connector.store.schema`, then (from the repository root)::

    .venv/bin/python -m connector.store.migrations revision -m "what changes" \
        --autogenerate --url sqlite:////tmp/at-head.db

and review the new file under ``versions/``; ``tests/test_store.py`` checks
that the migrations build exactly the schema the code uses.
"""
