"""Bad input under load: while the faults run, a seeded fuzzer keeps hitting every API endpoint
(from the OpenAPI document) and every form a marketer can reach (found by following the pages'
links), with wrong types, missing and unknown fields, huge and NUL-laden text, malformed JSON.

It works in its own tenant ("fuzz"), whose runs the delivery checks leave out (a fuzzed value
may well be a valid trigger). What it proves: no answer is a 500 (a backing service that cannot
be reached is a 503 to retry), and nothing is half-saved (checked by `structural_problems`).
"""

from __future__ import annotations

import json
import random
import re
import threading
from collections import Counter
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests

TIMEOUT = 15.0
SKIP_FORMS = re.compile(r"logout|password|/pause|/resume|revoke|remove|delete")


@dataclass
class Form:
    action: str
    fields: list[str]


class _Forms(HTMLParser):
    """The POST forms of a page and its same-site links."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[Form] = []
        self.links: list[str] = []
        self._current: Form | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        if tag == "a" and values.get("href", "").startswith("/t/"):
            self.links.append(values["href"])
        if tag == "form" and values.get("method", "get").lower() == "post":
            self._current = Form(values.get("action", ""), [])
            self.forms.append(self._current)
        name = values.get("name")
        fillable = tag in ("input", "textarea", "select") and self._current is not None
        if fillable and name and name != "csrfmiddlewaretoken":
            self._current.fields.append(name)

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._current = None


@dataclass
class Fuzzer:
    """Sends bad input from one thread until stopped; `server_errors` lists every 500."""

    seed: int
    web_url: str
    slug: str
    token: str
    username: str
    password: str
    sent: Counter = field(default_factory=Counter)
    server_errors: list[str] = field(default_factory=list)
    stop_event: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.random = random.Random(seed_of(self.seed))
        self.thread = threading.Thread(target=self._run, name="fuzzer", daemon=True)

    # -- values --------------------------------------------------------------------------------

    def value(self, depth: int = 0) -> Any:
        choices: list[Any] = [
            None,
            True,
            -1,
            0,
            2**63,
            1.5e308,
            "",
            "x" * self.random.choice([1, 300, 10_000]),
            "\u0000nul",
            "\ud800",  # a lone surrogate: valid JSON text, not storable
            "2026-02-30",
            "<script>alert(1)</script>",
            "../../etc/passwd",
            "ünïcødé 🚀",
        ]
        if depth < 3:
            choices += [[self.value(depth + 1)], {"k": self.value(depth + 1)}]
        return self.random.choice(choices)

    def body(self, properties: list[str]) -> tuple[bytes, str]:
        """A request body: JSON of the endpoint's fields with bad values, or not JSON at all."""
        roll = self.random.random()
        if roll < 0.1:
            return b'{"unterminated": ', "application/json"
        if roll < 0.15:
            return b"\xff\xfe not utf-8", "application/json"
        if roll < 0.2:
            return json.dumps(self.value()).encode(), "application/json"
        payload = {name: self.value() for name in properties if self.random.random() < 0.7}
        if self.random.random() < 0.3:
            payload["unknown_field"] = self.value()
        return json.dumps(payload).encode(), "application/json"

    # -- targets -------------------------------------------------------------------------------

    def api_targets(self, session: requests.Session) -> list[tuple[str, list[str]]]:
        """Every POST of the API with its body's field names, the tenant's slug filled in."""
        schema = session.get(f"{self.web_url}/api/v1/schema", timeout=TIMEOUT).json()
        components = schema.get("components", {}).get("schemas", {})
        targets = []
        for path, operations in schema.get("paths", {}).items():
            post = operations.get("post")
            if not post or "tenant_slug" not in path:
                continue
            concrete = re.sub(r"\{tenant_slug\}", self.slug, path)
            concrete = re.sub(
                r"\{[^}]+\}", lambda _: str(self.random.choice([1, 2, 999999])), concrete
            )
            reference = (
                post.get("requestBody", {})
                .get("content", {})
                .get("application/json", {})
                .get("schema", {})
                .get("$ref", "")
            )
            properties = list(
                components.get(reference.rsplit("/", 1)[-1], {}).get("properties", {})
            )
            if "pause" in concrete or "resume" in concrete:
                continue  # a valid reason would really pause the fuzz tenant: not bad input
            targets.append((concrete, properties))
        return targets

    def log_in(self, session: requests.Session) -> bool:
        page = session.get(f"{self.web_url}/login/", timeout=TIMEOUT)
        token = session.cookies.get("csrftoken", "")
        answer = session.post(
            f"{self.web_url}/login/",
            data={
                "username": self.username,
                "password": self.password,
                "csrfmiddlewaretoken": token,
            },
            headers={"Referer": page.url},
            timeout=TIMEOUT,
        )
        return f"/t/{self.slug}/" in answer.url or answer.status_code == 200

    def form_targets(self, session: requests.Session) -> list[Form]:
        """The POST forms of every page linked from the tenant's pages, two links deep."""
        seen_pages: set[str] = set()
        forms: dict[str, Form] = {}
        queue = [f"/t/{self.slug}/"]
        while queue and len(seen_pages) < 60:
            path = queue.pop(0)
            if path in seen_pages:
                continue
            seen_pages.add(path)
            try:
                page = session.get(self.web_url + path, timeout=TIMEOUT)
            except requests.RequestException:
                continue
            parser = _Forms()
            parser.feed(page.text)
            for form in parser.forms:
                action = urlsplit(urljoin(self.web_url + path, form.action or path)).path
                if not SKIP_FORMS.search(action):
                    forms.setdefault(action, form)
            for link in parser.links:
                link = urlsplit(link).path
                if link.startswith(f"/t/{self.slug}/") and path.count("/") < 6:
                    queue.append(link)
        return list(forms.values())

    # -- sending -------------------------------------------------------------------------------

    def _record(self, what: str, status: int) -> None:
        self.sent[str(status)] += 1
        if status == 500:
            self.server_errors.append(what)

    def _run(self) -> None:
        api = requests.Session()
        forms_session = requests.Session()
        api_targets: list = []
        forms: list[Form] = []
        while not self.stop_event.is_set():
            try:
                if not api_targets:
                    api_targets = self.api_targets(api)
                if not forms and self.log_in(forms_session):
                    forms = self.form_targets(forms_session)
                if api_targets and self.random.random() < 0.6:
                    path, properties = self.random.choice(api_targets)
                    body, content_type = self.body(properties)
                    answer = api.post(
                        self.web_url + path,
                        data=body,
                        headers={
                            "Authorization": f"Bearer {self.token}",
                            "Content-Type": content_type,
                            "Idempotency-Key": f"fuzz-{self.random.getrandbits(40)}",
                        },
                        timeout=TIMEOUT,
                    )
                    self._record(f"POST {path} {body[:200]!r}", answer.status_code)
                elif forms:
                    form = self.random.choice(forms)
                    data = {
                        name: self._form_value()
                        for name in form.fields
                        if self.random.random() < 0.8
                    }
                    data["csrfmiddlewaretoken"] = forms_session.cookies.get("csrftoken", "")
                    answer = forms_session.post(
                        self.web_url + form.action,
                        data=data,
                        headers={"Referer": self.web_url + form.action},
                        timeout=TIMEOUT,
                        allow_redirects=False,
                    )
                    self._record(f"POST {form.action} {str(data)[:200]}", answer.status_code)
            except (requests.RequestException, ValueError):
                self.sent["no answer"] += 1
            self.stop_event.wait(0.05)

    def _form_value(self) -> str:
        value = self.value()
        return value if isinstance(value, str) else json.dumps(value)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stop_event.set()
        self.thread.join(timeout=TIMEOUT * 3)


def seed_of(seed: int) -> int:
    return seed * 1_000_003 + 17


def structural_problems() -> list[str]:
    """Half-saved objects: what a request that failed midway would leave behind."""
    from campaigns.altcraft_launches.models import AltcraftLaunch
    from campaigns.event_generators.models import TriggerGroup
    from dashboard.runs.models import Run, RunAttempt
    from dashboard.runs.states import RunState

    problems = []
    empty_groups = TriggerGroup.objects.filter(campaign_runs__isnull=True).count()
    if empty_groups:
        problems.append(f"{empty_groups} trigger groups without runs")
    sent_without_attempt = (
        Run.objects.filter(state__in=[RunState.SUCCEEDED, RunState.ACCEPTED])
        .exclude(pk__in=RunAttempt.objects.values("run_id"))
        .exclude(attempt_count=0, vendor_reference="")  # settled by a person without a send
        .count()
    )
    if sent_without_attempt:
        problems.append(f"{sent_without_attempt} sent runs without an attempt row")
    confirmed_without_chunks = (
        AltcraftLaunch.objects.filter(state="sending").filter(chunks__isnull=True).count()
    )
    if confirmed_without_chunks:
        problems.append(f"{confirmed_without_chunks} Altcraft launches sending with no chunks")
    return problems
