"""A single-node KRaft Kafka broker from Maven Central jars, run as a detached local JVM.

Private to :mod:`pipeline.services`; everything here takes explicit paths and ports.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import psutil

Progress = Callable[[str], None]
T = TypeVar("T")

POM = Path(__file__).resolve().parent.parent / "services" / "kafka" / "pom.xml"
JARS_MARKER = ".complete"
SLF4J2_VERSION = "2.0.17"
STOP_TIMEOUT = 30.0
LOG_ROTATE_BYTES = 50 * 1024 * 1024
JVM_OPTS = [
    "-Xms128m",
    "-Xmx512m",
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-XX:+ExitOnOutOfMemoryError",
    "-Djava.awt.headless=true",
]

LOG4J2_XML = """<?xml version="1.0" encoding="UTF-8"?>
<Configuration status="WARN">
  <Appenders>
    <Console name="STDOUT" target="SYSTEM_OUT">
      <PatternLayout pattern="[%d] %p %m (%c)%n"/>
    </Console>
  </Appenders>
  <Loggers>
    <Root level="INFO"><AppenderRef ref="STDOUT"/></Root>
    <Logger name="kafka" level="WARN"/>
    <Logger name="state.change.logger" level="WARN"/>
    <Logger name="org.apache.kafka" level="WARN"/>
    <Logger name="kafka.server.KafkaRaftServer" level="INFO"/>
    <Logger name="kafka.server.BrokerServer" level="INFO"/>
    <Logger name="kafka.server.ControllerServer" level="INFO"/>
    <Logger name="kafka.server.SharedServer" level="INFO"/>
  </Loggers>
</Configuration>
"""


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    """True when something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def pid_alive(pid: int | None, cmdline_has: str | None = None) -> bool:
    """True when pid is a live (non-zombie) process, optionally whose command line contains a word."""
    if not pid:
        return False
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        return cmdline_has is None or cmdline_has in " ".join(proc.cmdline())
    except psutil.Error:
        return False


def terminate(pid: int, timeout: float, kill: bool = False) -> None:
    """SIGTERM (or SIGKILL when kill) and wait; SIGKILL when still alive after timeout."""
    try:
        proc = psutil.Process(pid)
        proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        try:
            proc.wait(timeout)  # also reaps it when it is our child
        except psutil.TimeoutExpired:
            proc.kill()
            proc.wait(10)
    except psutil.NoSuchProcess:
        pass


def run_sync(make: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine to completion from sync code, even when an event loop is already running here."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(make())
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(lambda: asyncio.run(make())).result()


def log_tail(path: Path, lines: int = 30) -> str:
    if not path.exists():
        return f"(no log at {path})"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


# ---------------------------------------------------------------- jars


def ensure_kafka_jars(libs: Path, progress: Progress | None = None) -> Path:
    """Fetch the broker jars with Maven into libs once; a marker naming the pom's hash records success."""
    say = progress or (lambda _msg: None)
    libs = libs.expanduser().absolute()
    want = hashlib.sha256(POM.read_bytes()).hexdigest() if POM.exists() else None
    marker = libs / JARS_MARKER
    if marker.exists() and (want is None or marker.read_text().strip() == want):
        return libs
    if want is None:
        raise RuntimeError(f"Kafka jars missing in {libs} and no {POM} to fetch them with")
    mvn = shutil.which("mvn")
    if mvn is None:
        raise RuntimeError("Maven (mvn) is needed once to fetch the Kafka jars; install it or set "
                           "GALLERYFLOW_KAFKA_BOOTSTRAP_SERVERS to an existing broker")
    tmp = libs.with_name(libs.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    say(f"kafka: fetching broker jars from Maven Central into {libs} (once) ...")
    started = time.monotonic()
    cmd = [mvn, "-q", "-B", "-f", str(POM), "dependency:copy-dependencies",
           f"-DoutputDirectory={tmp}", "-DincludeScope=runtime"]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).splitlines()[-30:])
        raise RuntimeError(f"mvn failed ({done.returncode}) fetching Kafka jars:\n{tail}")
    _fix_slf4j(mvn, tmp)
    (tmp / JARS_MARKER).write_text(want + "\n")
    if libs.is_symlink():
        libs.unlink()
    shutil.rmtree(libs, ignore_errors=True)
    tmp.rename(libs)
    count = len(list(libs.glob("*.jar")))
    say(f"kafka: fetched {count} jars in {time.monotonic() - started:.1f} s")
    return libs


def _fix_slf4j(mvn: str, libs: Path) -> None:
    """Kafka's poms pin slf4j-api 1.7.36, which wins Maven's nearest-first mediation over the 2.x that
    log4j-slf4j2-impl needs: the broker then logs nothing ("NOP logger"). Swap in slf4j-api 2.x."""
    old = list(libs.glob("slf4j-api-1.*.jar"))
    if not old or not list(libs.glob("log4j-slf4j2-impl-*.jar")):
        return
    cmd = [mvn, "-q", "-B", "-f", str(POM), "dependency:copy",
           f"-Dartifact=org.slf4j:slf4j-api:{SLF4J2_VERSION}", f"-DoutputDirectory={libs}"]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False, cwd=libs)
    if done.returncode != 0:
        raise RuntimeError(f"mvn failed fetching slf4j-api {SLF4J2_VERSION}:\n{done.stdout}{done.stderr}")
    for jar in old:
        jar.unlink()


# ---------------------------------------------------------------- config, format, run


def write_config(home: Path, port: int, controller_port: int) -> Path:
    """Write server.properties and log4j2.xml under home; returns the properties file."""
    props = {
        "node.id": "1",
        "process.roles": "broker,controller",
        "listeners": f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{port}",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "inter.broker.listener.name": "PLAINTEXT",
        "controller.listener.names": "CONTROLLER",
        "controller.quorum.voters": f"1@127.0.0.1:{controller_port}",
        "log.dirs": str(home / "data"),
        "num.partitions": "6",
        "default.replication.factor": "1",
        "min.insync.replicas": "1",
        "auto.create.topics.enable": "false",
        "offsets.topic.replication.factor": "1",
        "offsets.topic.num.partitions": "10",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "transaction.state.log.num.partitions": "10",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        "group.initial.rebalance.delay.ms": "0",
        # After a crash the new broker waits for the old registration's session to expire (default 9 s).
        "broker.session.timeout.ms": "3000",
        "broker.heartbeat.interval.ms": "500",
        "num.network.threads": "2",
        "num.io.threads": "4",
        "num.recovery.threads.per.data.dir": "2",
        "log.retention.hours": "168",
    }
    path = home / "server.properties"
    text = "# Written by galleryflow services up; edits are overwritten.\n"
    path.write_text(text + "".join(f"{k}={v}\n" for k, v in props.items()))
    (home / "log4j2.xml").write_text(LOG4J2_XML)
    return path


def _java(home: Path, libs: Path, main: str, *args: str) -> list[str]:
    java = shutil.which("java")
    if java is None:
        raise RuntimeError("java (17+) is needed to run the local Kafka broker")
    return [java, *JVM_OPTS, f"-Dlog4j2.configurationFile={home / 'log4j2.xml'}",
            f"-Dkafka.logs.dir={home}", "-cp", f"{libs}/*", main, *args]


def format_storage(home: Path, libs: Path, props: Path, progress: Progress) -> None:
    """Format the KRaft log dir once (skipped when meta.properties exists)."""
    if (home / "data" / "meta.properties").exists():
        return
    progress("kafka: formatting storage (once)")
    tool = "kafka.tools.StorageTool"
    uuid = subprocess.run(_java(home, libs, tool, "random-uuid"), capture_output=True, text=True,
                          check=True).stdout.strip().splitlines()[-1]
    done = subprocess.run(_java(home, libs, tool, "format", "-t", uuid, "-c", str(props)),
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"Kafka StorageTool format failed:\n{done.stdout}\n{done.stderr}")


def running_pid(home: Path) -> int | None:
    """The broker's pid from kafka.pid when that process is alive and is a Kafka broker."""
    pid_file = home / "kafka.pid"
    try:
        pid = int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if pid_alive(pid, "kafka.Kafka") else None


def start(home: Path, libs: Path, port: int, controller_port: int, progress: Progress,
          timeout: float = 90.0) -> tuple[int, bool]:
    """Start the broker unless it already runs; wait until it answers. Returns (pid, started_now)."""
    home.mkdir(parents=True, exist_ok=True)
    bootstrap = f"127.0.0.1:{port}"
    log = home / "kafka.log"
    pid = running_pid(home)
    started_now = pid is None
    if pid is not None:
        props_text = (home / "server.properties").read_text()
        if f"PLAINTEXT://127.0.0.1:{port}," not in props_text:
            raise RuntimeError(f"the broker in {home} runs with other ports than {port}/{controller_port}; "
                               "run `galleryflow services down` first")
    else:
        for p in (port, controller_port):
            if port_open("127.0.0.1", p):
                raise RuntimeError(f"port {p} is in use by something that is not our broker "
                                   f"(no live pid in {home / 'kafka.pid'}); free it or change the port")
        ensure_kafka_jars(libs, progress)
        props = write_config(home, port, controller_port)
        format_storage(home, libs, props, progress)
        progress(f"kafka: starting broker on {bootstrap}")
        if log.exists() and log.stat().st_size > LOG_ROTATE_BYTES:
            log.replace(log.with_name(log.name + ".1"))
        with log.open("ab") as out:
            out.write(f"\n==== galleryflow: starting broker {time.ctime()} ====\n".encode())
            out.flush()
            proc = subprocess.Popen(_java(home, libs, "kafka.Kafka", str(props)), cwd=home,
                                    stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                    start_new_session=True)
        pid = proc.pid
        (home / "kafka.pid").write_text(f"{pid}\n")
    try:
        wait_for_kafka(bootstrap, timeout, pid=pid)
    except Exception as exc:
        if started_now:  # leave nothing half-started behind
            stop(home, timeout=10)
        raise RuntimeError(f"Kafka on {bootstrap} did not become ready: {exc}\n"
                           f"--- tail of {log} ---\n{log_tail(log)}") from exc
    return pid, started_now


def stop(home: Path, kill: bool = False, timeout: float = STOP_TIMEOUT) -> bool:
    """Stop the broker this data dir started (SIGTERM, SIGKILL after timeout). True when one ran."""
    pid = running_pid(home)
    (home / "kafka.pid").unlink(missing_ok=True)
    if pid is None:
        return False
    terminate(pid, timeout, kill=kill)
    return True


# ---------------------------------------------------------------- readiness


async def wait_for_kafka_async(bootstrap: str, seconds: float = 90.0, pid: int | None = None) -> None:
    """Wait until a broker answers a real metadata request (describe_cluster) or raise TimeoutError."""
    from aiokafka.admin import AIOKafkaAdminClient

    deadline = time.monotonic() + seconds
    host, _, port = bootstrap.split(",")[0].rpartition(":")
    last: BaseException | None = None
    while time.monotonic() < deadline:
        if pid is not None and not pid_alive(pid):
            raise RuntimeError(f"broker process {pid} exited")
        if port_open(host, int(port)):
            admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000)
            try:
                await admin.start()
                cluster = await admin.describe_cluster()
                if cluster.get("brokers"):
                    return
            except Exception as exc:
                last = exc
            finally:
                await admin.close()
        await asyncio.sleep(0.25)
    raise TimeoutError(f"no Kafka broker answered on {bootstrap} within {seconds:.0f} s (last: {last!r})")


def wait_for_kafka(bootstrap: str, timeout: float = 90.0, pid: int | None = None) -> None:
    """Blocking form of :func:`wait_for_kafka_async` (works inside a running event loop too)."""
    run_sync(lambda: wait_for_kafka_async(bootstrap, timeout, pid))
