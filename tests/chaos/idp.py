"""A load generator that behaves like an IdP (and the app's login backend) and keeps a ledger.

Every write the service acknowledged (2xx) is recorded in the ledger, which is what the
invariant checker compares PostgreSQL and Kafka with. Like Entra ID, a request that fails with
a connection error, a 5xx or a 429 (after its Retry-After) is retried with back-off until it is
answered; a create whose first answer was lost comes back as 409 and is resolved by a lookup on
userName, a delete whose answer was lost comes back as 404. Each user belongs to one thread, so
its writes are sequential and the last acknowledged one is its final state.
"""

import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
GIVE_UP_SECONDS = 180.0


@dataclass
class UserModel:
    user_name: str
    id: str = ""
    display_name: str = ""
    active: bool = True
    deleted: bool = False
    groups: set[str] = field(default_factory=set)


@dataclass
class OrgLedger:
    """What the service acknowledged for one org."""

    id: str
    slug: str
    token: str
    users: dict[str, UserModel] = field(default_factory=dict)  # by userName
    groups: dict[str, str] = field(default_factory=dict)  # id -> displayName
    logins: Counter[str] = field(default_factory=Counter)  # acknowledged logins per email


@dataclass
class Traffic:
    """What the IdP saw: answers by kind, retries, latencies."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    answers: Counter[str] = field(default_factory=Counter)  # "201", "503", "ConnectError", ...
    retries: int = 0
    acknowledged: Counter[str] = field(default_factory=Counter)  # by operation
    max_attempt_seconds: float = 0.0
    max_operation_seconds: float = 0.0  # first attempt to final answer, retries included
    slowest_operation: str = ""
    anomalies: list[str] = field(default_factory=list)  # answers a correct service never gives
    errors_at: list[float] = field(default_factory=list)  # monotonic times of failed attempts

    def saw(self, kind: str, seconds: float, failed: bool) -> None:
        with self.lock:
            self.answers[kind] += 1
            self.max_attempt_seconds = max(self.max_attempt_seconds, seconds)
            if failed:
                self.errors_at.append(time.monotonic())


class Client:
    """One thread's HTTP client with the IdP's retry policy."""

    def __init__(self, base_url: str, token: str, traffic: Traffic, stop: threading.Event):
        self.http = httpx.Client(
            base_url=base_url, timeout=httpx.Timeout(10.0, connect=2.0),
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/scim+json"},
        )
        self.traffic = traffic
        self.stop = stop

    def call(self, op: str, method: str, url: str, body: Any = None) -> tuple[httpx.Response, int]:
        """The final answer (2xx or a 4xx) and how many attempts it took."""
        first = time.monotonic()
        delay = 0.2
        attempt = 0
        while True:
            attempt += 1
            start = time.monotonic()
            try:
                response = self.http.request(method, url, json=body)
            except httpx.TransportError as exc:
                self.traffic.saw(type(exc).__name__, time.monotonic() - start, True)
                response = None
            else:
                failed = response.status_code >= 500 or response.status_code == 429
                self.traffic.saw(str(response.status_code), time.monotonic() - start, failed)
                if not failed:
                    took = time.monotonic() - first
                    with self.traffic.lock:
                        if took > self.traffic.max_operation_seconds:
                            self.traffic.max_operation_seconds, self.traffic.slowest_operation = took, op
                        if response.status_code < 300:
                            self.traffic.acknowledged[op] += 1
                    return response, attempt
            if time.monotonic() - first > GIVE_UP_SECONDS:
                raise RuntimeError(f"{op} {method} {url}: no answer after {GIVE_UP_SECONDS}s")
            with self.traffic.lock:
                self.traffic.retries += 1
            wait = delay
            if response is not None and response.status_code == 429:
                wait = float(response.headers.get("Retry-After", "1"))
            time.sleep(wait * random.uniform(0.8, 1.2))
            delay = min(delay * 2, 2.0)

    def close(self) -> None:
        self.http.close()


class ScimActor:
    """One IdP sync thread: owns some users of one org and changes them at random."""

    def __init__(self, org: OrgLedger, base_url: str, traffic: Traffic, stop: threading.Event, name: str, seed: int):
        self.org = org
        self.client = Client(f"{base_url}/scim/{org.slug}/v2", org.token, traffic, stop)
        self.traffic = traffic
        self.stop = stop
        self.name = name
        self.rng = random.Random(seed)
        self.mine: list[UserModel] = []
        self.serial = 0

    def _anomaly(self, what: str) -> None:
        with self.traffic.lock:
            self.traffic.anomalies.append(what)

    def create(self, user_name: str | None = None) -> UserModel:
        self.serial += 1
        user = UserModel(user_name or f"{self.name}-{self.serial:05d}@{self.org.slug}.test")
        user.display_name = f"{self.name} {self.serial}"
        body = {"schemas": [USER], "userName": user.user_name, "displayName": user.display_name, "active": True,
                "emails": [{"value": user.user_name, "type": "work", "primary": True}]}
        r, attempts = self.client.call("create user", "POST", "/Users", body)
        if r.status_code == 201:
            user.id = r.json()["id"]
        elif r.status_code == 409 and attempts > 1:  # our first attempt did create it; its answer was lost
            found = self.client.call("lookup user", "GET", f'/Users?filter=userName eq "{user.user_name}"')[0].json()
            user.id = found["Resources"][0]["id"]
        else:
            self._anomaly(f"create {user.user_name}: {r.status_code} {r.text[:200]}")
            return user
        self.org.users[user.user_name] = user
        self.mine.append(user)
        return user

    def _patch(self, op: str, user: UserModel, operations: list[dict[str, Any]]) -> bool:
        r, _ = self.client.call(op, "PATCH", f"/Users/{user.id}", {"schemas": [PATCH], "Operations": operations})
        if r.status_code >= 300:
            self._anomaly(f"{op} {user.user_name}: {r.status_code} {r.text[:200]}")
            return False
        return True

    def step(self) -> None:
        live = [u for u in self.mine if not u.deleted]
        roll = self.rng.random()
        if not live or roll < 0.25:
            self.create()
            return
        user = self.rng.choice(live)
        if roll < 0.45:
            name = f"{user.display_name.split(' #')[0]} #{self.rng.randrange(10**6)}"
            if self._patch("update user", user, [{"op": "Replace", "path": "displayName", "value": name}]):
                user.display_name = name
        elif roll < 0.60:
            active = not user.active
            # Entra sends booleans as strings and capitalised ops
            if self._patch("deactivate user" if not active else "reactivate user", user,
                           [{"op": "Replace", "path": "active", "value": "True" if active else "False"}]):
                user.active = active
        elif roll < 0.67:
            r, attempts = self.client.call("delete user", "DELETE", f"/Users/{user.id}")
            if r.status_code == 204 or (r.status_code == 404 and attempts > 1):
                user.deleted = True
                user.groups.clear()
            else:
                self._anomaly(f"delete {user.user_name}: {r.status_code} {r.text[:200]}")
        else:
            group = self.rng.choice(sorted(self.org.groups))
            if group in user.groups:
                ops = [{"op": "Remove", "path": f'members[value eq "{user.id}"]'}]
                what = "remove group member"
            else:
                ops = [{"op": "Add", "path": "members", "value": [{"value": user.id}]}]
                what = "add group member"
            r, attempts = self.client.call(what, "PATCH", f"/Groups/{group}", {"schemas": [PATCH], "Operations": ops})
            # a removal whose first answer was lost finds no target the second time
            lost_answer = attempts > 1 and r.status_code == 400 and "noTarget" in r.text and what.startswith("remove")
            if r.status_code < 300 or lost_answer:
                (user.groups.discard if what.startswith("remove") else user.groups.add)(group)
            else:
                self._anomaly(f"{what} {user.user_name} {group}: {r.status_code} {r.text[:200]}")

    def run(self, think: float) -> None:
        try:
            while not self.stop.is_set():
                self.step()
                time.sleep(think)
        finally:
            self.client.close()


class LoginActor:
    """The app's backend: provisions people over SCIM, then reports their logins (first and repeats)."""

    def __init__(self, org: OrgLedger, base_url: str, service_token: str, traffic: Traffic, stop: threading.Event,
                 name: str, seed: int):
        self.scim = ScimActor(org, base_url, traffic, stop, name, seed)
        self.app = Client(base_url, service_token, traffic, stop)
        self.app.http.headers["Content-Type"] = "application/json"
        self.org = org
        self.traffic = traffic
        self.stop = stop
        self.rng = random.Random(seed + 1)
        self.people: list[str] = []

    def step(self) -> None:
        if not self.people or self.rng.random() < 0.4:
            user = self.scim.create()
            if not user.id:
                return
            self.people.append(user.user_name)  # never deactivated nor deleted: every login counts
        email = self.rng.choice(self.people)
        r, _ = self.app.call("login", "POST", "/internal/v1/logins", {"org": self.org.slug, "email": email, "method": "password"})
        if r.status_code == 202:
            self.org.logins[email] += 1
        else:
            with self.traffic.lock:
                self.traffic.anomalies.append(f"login {email}: {r.status_code} {r.text[:200]}")

    def run(self, think: float) -> None:
        try:
            while not self.stop.is_set():
                self.step()
                time.sleep(think)
        finally:
            self.scim.client.close()
            self.app.close()


def create_groups(org: OrgLedger, base_url: str, traffic: Traffic, count: int) -> None:
    client = Client(f"{base_url}/scim/{org.slug}/v2", org.token, traffic, threading.Event())
    try:
        for i in range(count):
            r, _ = client.call("create group", "POST", "/Groups", {"schemas": [GROUP], "displayName": f"team-{i}"})
            assert r.status_code == 201, r.text
            org.groups[r.json()["id"]] = f"team-{i}"
    finally:
        client.close()
