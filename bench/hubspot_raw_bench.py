"""CPU per HubSpot page: the client's models against the raw JSON of the same call.

One list page of 100 companies and one search page of 200, read the way
segsync read them before (``*_with_http_info``: the client builds a model
per record and parses every timestamp) and the way it reads them now
(``_preload_content=False``, ``json.loads``, a :class:`CrmRecord` per
record), both turned into records. The sandbox runs in its own process, so
``time.process_time`` counts the connector's side only.

    .venv/bin/python bench/hubspot_raw_bench.py [--pages 200]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import tomllib
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import OUT, SandboxProcess, save, stamp
from hubspot import HubSpot

from connector import templates
from connector.crm.base import CrmRecord, parse_stamp
from connector.crm.hubspot.raw import record_of
from connector.crm.hubspot.values import STAMP
from connector.engine import compile_mapping
from connector.mapping import load_mapping


def _properties() -> list[str]:
    engine = compile_mapping(load_mapping(str(templates.ACCOUNTS)))
    outputs = engine.output_fields("hubspot").values()
    return sorted({*engine.input_fields("hubspot"), *outputs, STAMP})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=200)
    args = parser.parse_args()
    work = OUT / "hubspot_raw"
    properties = _properties()
    report: dict[str, Any] = {"when": stamp(), "args": vars(args), "properties": len(properties)}
    with SandboxProcess(work, 1_000, only="hubspot", requests_per_10s=1_000_000) as sb:
        sb.call("limits", requests_per_10s=1_000_000, search_per_second=1_000_000)
        hs = tomllib.loads(sb.config.read_text())["connections"]["hubspot"]
        client = HubSpot(access_token=hs["access_token"], host=hs["base_url"], retry=False)
        basic, search = client.crm.companies.basic_api, client.crm.companies.search_api
        body = {"sorts": [{"propertyName": STAMP, "direction": "ASCENDING"}], "limit": 200}
        body["properties"] = properties  # type: ignore[assignment]

        def models_list() -> list[CrmRecord]:
            page, _, _ = basic.get_page_with_http_info(limit=100, properties=properties)
            return [
                CrmRecord(
                    str(i.id), parse_stamp(i.properties.get(STAMP) or i.updated_at), i.properties
                )
                for i in page.results
            ]

        def raw_list() -> list[CrmRecord]:
            response = basic.get_page_with_http_info(
                limit=100, properties=properties, _preload_content=False
            )
            data = json.loads(response.data)
            response.release_conn()
            return [record_of(i) for i in data["results"]]

        def models_search() -> list[CrmRecord]:
            page, _, _ = search.do_search_with_http_info(public_object_search_request=body)
            return [
                CrmRecord(str(i.id), parse_stamp(i.properties.get(STAMP)), i.properties)
                for i in page.results
            ]

        def raw_search() -> list[CrmRecord]:
            response = search.do_search_with_http_info(
                public_object_search_request=body, _preload_content=False
            )
            data = json.loads(response.data)
            response.release_conn()
            return [record_of(i) for i in data["results"]]

        rows = {}
        for name, fn in (
            ("list page (100), models", models_list),
            ("list page (100), raw JSON", raw_list),
            ("search page (200), models", models_search),
            ("search page (200), raw JSON", raw_search),
        ):
            assert fn()  # warm the pool and the sandbox's search cache
            cpu = time.process_time()
            for _ in range(args.pages):
                fn()
            ms = (time.process_time() - cpu) / args.pages * 1000
            rows[name] = round(ms, 2)
            print(f"{name}: {ms:.2f} ms CPU per page ({args.pages} pages)", flush=True)
    report["cpu_ms_per_page"] = rows
    print(f"saved {save('hubspot-raw', report)}")


if __name__ == "__main__":
    main()
