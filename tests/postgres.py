"""A real PostgreSQL server for the tests: Debian's binaries (package postgresql, installed by
install.sh), a throw-away cluster on a loopback port, stopped at the end."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path


def _bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}")) or (
        [shutil.which(name)] if shutil.which(name) else [])
    if not found:
        raise RuntimeError(f"PostgreSQL's {name} not found: install Debian's postgresql "
                           "package (bash install.sh does)")
    return found[-1]


@dataclass
class PostgresServer:
    """A running server: `url(database)` addresses a database on it."""

    folder: Path
    port: int
    as_user: list[str]

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        """A fresh, empty database; its URL."""
        import psycopg

        name = f"lw_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return self.url(name)

    def stop(self) -> None:
        subprocess.run([*self.as_user, _bin("pg_ctl"), "stop", "-D", str(self.folder / "data"),
                        "-m", "immediate", "-w", "-t", "30"], capture_output=True, timeout=60)
        shutil.rmtree(self.folder, ignore_errors=True)


def start_postgres(port: int) -> PostgresServer:
    """initdb + pg_ctl start on 127.0.0.1:`port` (trust auth, no fsync: test data only).
    PostgreSQL refuses to run as root, so as root it runs as the `postgres` user."""
    folder = Path(tempfile.mkdtemp(prefix="lanewatch-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:
        user = pwd.getpwnam("postgres")
        os.chmod(folder, 0o755)
        os.chown(folder, user.pw_uid, user.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    data = folder / "data"
    subprocess.run([*as_user, _bin("initdb"), "-D", str(data), "-U", "postgres",
                    "--auth=trust", "-E", "UTF8", "--no-sync"],
                   check=True, capture_output=True, timeout=120)
    options = (f"-c listen_addresses=127.0.0.1 -c port={port} -c fsync=off "
               f"-c unix_socket_directories={folder} -c max_connections=50")
    subprocess.run([*as_user, _bin("pg_ctl"), "start", "-D", str(data), "-w", "-t", "60",
                    "-l", str(folder / "server.log"), "-o", options],
                   check=True, capture_output=True, timeout=90)
    server = PostgresServer(folder, port, as_user)
    deadline = time.monotonic() + 30
    while subprocess.run([_bin("pg_isready"), "-h", "127.0.0.1", "-p", str(port)],
                         capture_output=True).returncode != 0:
        if time.monotonic() > deadline:
            server.stop()
            raise RuntimeError(f"PostgreSQL did not come up on port {port}")
        time.sleep(0.2)
    return server
