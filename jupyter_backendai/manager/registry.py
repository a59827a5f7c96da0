"""The container registries' HTTP API (Docker Registry v2): what a rescan finds, without a handler or a database.

:func:`scan_registry` lists every repository and tag of one registry (under its project, when
set) and reads each image's platforms and labels; ``/admin/images/rescan``
(:mod:`.admin.images`) stores the result. Basic auth, or the bearer-token exchange of Docker
Hub and Harbor; a registry that cannot be read is reported, never raised.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode, urljoin

from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest, HTTPResponse

MANIFEST_V2 = "application/vnd.docker.distribution.manifest.v2+json"
MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
#: Docker's architecture names → Backend.AI's (``uname -m``).
ARCHITECTURES = {"amd64": "x86_64", "arm64": "aarch64", "386": "i386", "arm": "armv7l", "ppc64le": "ppc64le"}
#: An image must carry one of these labels to be offered (F42 "images labeled for the platform").
PLATFORM_LABEL_PREFIX = "ai.backend."
SCAN_CONCURRENCY = 8


class RegistryError(Exception):
    """A registry that cannot be read (down, refused, malformed answer): one line for the report."""


@dataclass(frozen=True)
class RegistryAccess:
    """What the scan needs of a registry row, copied so that no db session crosses into the event loop."""

    hostname: str
    url: str
    username: str | None = None
    password: str | None = None
    project: str | None = None
    ssl_verify: bool = True


@dataclass
class ScannedImage:
    reference: str
    architecture: str
    labels: dict[str, str]
    digest: str | None


@dataclass
class ScanReport:
    images: list[ScannedImage] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def _next_link(response: HTTPResponse) -> str | None:
    """The ``Link: <...>; rel="next"`` of a paginated catalog or tag list."""
    match = re.search(r'<([^>]+)>\s*;\s*rel="?next"?', response.headers.get("Link", ""))
    return match.group(1) if match else None


def _challenge(header: str) -> dict[str, str]:
    return dict(re.findall(r'(\w+)="([^"]*)"', header))


class RegistryClient:
    """The Docker Registry HTTP API v2, with basic auth or the bearer-token dance of Docker Hub/Harbor."""

    def __init__(self, access: RegistryAccess, *, timeout: float = 30.0):
        self.access = access
        self.timeout = timeout
        self._token: str | None = None
        self.http = AsyncHTTPClient()

    def _request(self, url: str, headers: dict[str, str], *, basic: bool) -> HTTPRequest:
        kwargs: dict[str, Any] = {}
        if basic and self.access.username:
            kwargs = {"auth_username": self.access.username, "auth_password": self.access.password or ""}
        return HTTPRequest(
            url, headers=headers, validate_cert=self.access.ssl_verify, request_timeout=self.timeout, **kwargs
        )

    async def _fetch(self, request: HTTPRequest) -> HTTPResponse:
        try:
            return await self.http.fetch(request, raise_error=False)
        except (OSError, HTTPClientError, asyncio.TimeoutError) as e:
            raise RegistryError(f"{request.url}: {e}") from None

    async def get(self, path: str, accept: str | None = None) -> HTTPResponse:
        url = urljoin(self.access.url + "/", path.lstrip("/")) if not path.startswith("http") else path
        headers = {"Accept": accept} if accept else {}
        for attempt in range(2):
            if self._token:
                request = self._request(url, {**headers, "Authorization": f"Bearer {self._token}"}, basic=False)
            else:
                request = self._request(url, headers, basic=True)
            response = await self._fetch(request)
            challenge = response.headers.get("WWW-Authenticate", "")
            if response.code == 401 and attempt == 0 and challenge.lower().startswith("bearer "):
                self._token = await self._bearer_token(_challenge(challenge))
                continue
            if response.code != 200:
                detail = (response.body or b"")[:200].decode(errors="replace").strip()
                raise RegistryError(f"{url}: HTTP {response.code} {detail}".rstrip())
            return response
        raise RegistryError(f"{url}: still refused after authenticating")  # pragma: no cover - loop exits above

    async def _bearer_token(self, challenge: dict[str, str]) -> str:
        realm = challenge.get("realm")
        if not realm:
            raise RegistryError(f"{self.access.hostname}: a bearer challenge without a realm")
        query = urlencode({k: v for k, v in challenge.items() if k in ("service", "scope")})
        response = await self._fetch(self._request(f"{realm}?{query}" if query else realm, {}, basic=True))
        if response.code != 200:
            raise RegistryError(f"{self.access.hostname}: the token service answered HTTP {response.code}")
        data = json.loads(response.body)
        token = data.get("token") or data.get("access_token")
        if not token:
            raise RegistryError(f"{self.access.hostname}: the token service gave no token")
        return token

    async def get_json(self, path: str, accept: str | None = None) -> tuple[Any, HTTPResponse]:
        response = await self.get(path, accept)
        try:
            return json.loads(response.body), response
        except ValueError:
            raise RegistryError(f"{response.effective_url}: the answer is not JSON") from None

    async def paged(self, path: str, key: str) -> list[str]:
        items: list[str] = []
        next_path: str | None = path
        while next_path:
            data, response = await self.get_json(next_path)
            items += data.get(key) or []
            next_path = _next_link(response)
        return items

    async def image(self, repo: str, reference: str) -> list[tuple[str, dict[str, str], str | None]]:
        """(architecture, labels, digest) of each platform of ``repo:reference``."""
        accept = ", ".join((MANIFEST_V2, OCI_MANIFEST, MANIFEST_LIST, OCI_INDEX))
        manifest, response = await self.get_json(f"/v2/{repo}/manifests/{reference}", accept)
        digest = response.headers.get("Docker-Content-Digest") or "sha256:" + hashlib.sha256(response.body).hexdigest()
        media = manifest.get("mediaType") or response.headers.get("Content-Type", "").split(";")[0]
        if media in (MANIFEST_LIST, OCI_INDEX) or "manifests" in manifest:
            out = []
            for entry in manifest.get("manifests", []):
                platform = entry.get("platform") or {}
                if platform.get("os", "linux") != "linux" or platform.get("architecture") in (None, "unknown"):
                    continue  # attestations and other operating systems
                out += await self.image(repo, entry["digest"])
            return out
        if manifest.get("schemaVersion") != 2 or "config" not in manifest:
            raise RegistryError(f"{repo}:{reference}: unsupported manifest (schema {manifest.get('schemaVersion')})")
        config, _ = await self.get_json(f"/v2/{repo}/blobs/{manifest['config']['digest']}")
        labels = (config.get("config") or {}).get("Labels") or {}
        arch = config.get("architecture") or "amd64"
        return [(ARCHITECTURES.get(arch, arch), {str(k): str(v) for k, v in labels.items()}, digest)]


async def scan_registry(access: RegistryAccess, report: ScanReport) -> None:
    """Add every tag of every repository (under the registry's project, when set) to ``report``."""
    client = RegistryClient(access)
    try:
        repos = await client.paged("/v2/_catalog?n=1000", "repositories")
    except RegistryError as e:
        report.errors.append(f"{access.hostname}: cannot list repositories: {e}")
        return
    if access.project:
        repos = [r for r in repos if r.startswith(access.project.strip("/") + "/")]
    limit = asyncio.Semaphore(SCAN_CONCURRENCY)

    async def one(repo: str, tag: str) -> None:
        ref = f"{access.hostname}/{repo}:{tag}"
        async with limit:
            try:
                platforms = await client.image(repo, tag)
            except (RegistryError, KeyError, TypeError, AttributeError) as e:
                report.errors.append(f"{ref}: {e}")
                return
        for arch, labels, digest in platforms:
            if any(k.startswith(PLATFORM_LABEL_PREFIX) for k in labels):
                report.images.append(ScannedImage(ref, arch, labels, digest))
            else:
                report.skipped.append(f"{ref} ({arch}): no {PLATFORM_LABEL_PREFIX}* label")

    jobs = []
    for repo in repos:
        try:
            tags = await client.paged(f"/v2/{repo}/tags/list?n=1000", "tags")
        except RegistryError as e:
            report.errors.append(f"{access.hostname}/{repo}: cannot list tags: {e}")
            continue
        jobs += [one(repo, tag) for tag in tags]
    await asyncio.gather(*jobs)
