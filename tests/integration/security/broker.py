"""A second, secured local Kafka broker for the security tests, built on scripts/kafka-local.

Listeners (all on 127.0.0.1, from a free base port ``P``):

* ``P``     PLAINTEXT (inter-broker, and where the fixture creates its topic)
* ``P+1``   CONTROLLER
* ``P+2``   SASL_SSL with SCRAM-SHA-256 (alice), SCRAM-SHA-512 (bob) and PLAIN (paula)
* ``P+3``   SSL with ``ssl.client.auth=required`` (mTLS)

Certificates come from the ``openssl`` CLI (no Python dependency added): a test CA, the
broker's certificate (SAN ``localhost`` and ``127.0.0.1``, so hostname checking stays on),
a client certificate with an encrypted key (exercising ``ssl_key_password``), and a second,
unrelated CA for the wrong-CA tests. The broker takes them as inline PEM
(``ssl.keystore.type=PEM``), so no JKS and no keytool.

SCRAM users must exist at format time in KRaft (``StorageTool format --add-scram``).
scripts/kafka-local formats the data dir only when it holds no ``meta.properties``, so this
helper formats it first, with the same node id and log dir, and the script then starts the
broker as usual. The broker is stopped with ``scripts/kafka-local stop``, which kills the
pid it recorded.

Run by hand: ``python -m tests.integration.security.broker /tmp/secure-kafka`` starts one
and prints the settings to reach it; stop it with the printed command.
"""

from __future__ import annotations

import base64
import os
import shutil
import socket
import subprocess
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
KAFKA_LOCAL = ROOT / "scripts" / "kafka-local"

requires_java = pytest.mark.skipif(
    shutil.which("java") is None,
    reason="java not found: the security tests run a real Kafka broker (install a JDK 17+)",
)

#: SCRAM users created at format time: (mechanism, name, password).
SCRAM_USERS = (
    ("SCRAM-SHA-256", "alice", "alice-scram256-secret"),
    ("SCRAM-SHA-512", "bob", "bob-scram512-secret"),
)
PLAIN_USER = ("paula", "paula-plain-secret")
CLIENT_KEY_PASSWORD = "client-key-secret"
#: EC P-256 keys: generated in milliseconds (RSA takes a second or more on a busy machine).
NEW_KEY = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1")
TOPIC = "secure.roundtrip"


@dataclass(frozen=True)
class Pki:
    ca: Path
    other_ca: Path
    broker_cert: Path
    broker_key: Path
    client_cert: Path
    client_key: Path
    #: A client certificate signed by the other CA: the broker must refuse it.
    rogue_cert: Path
    rogue_key: Path


@dataclass(frozen=True)
class SecureBroker:
    home: Path
    plaintext: str
    sasl_ssl: str
    ssl: str
    pki: Pki


def _run(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(
            f"{Path(args[0]).name} failed ({done.returncode}): {done.stderr[-2000:]}"
        )
    return done.stdout


def make_pki(directory: Path) -> Pki:
    """Generate the CAs and certificates with the openssl CLI into ``directory``."""
    if shutil.which("openssl") is None:
        raise RuntimeError("openssl not found: the security tests generate certificates with it")
    directory.mkdir(parents=True, exist_ok=True)

    def ca(name: str, cn: str) -> None:
        _run(
            [
                "openssl", "req", "-x509", *NEW_KEY, "-nodes",
                "-keyout", f"{name}.key", "-out", f"{name}.pem", "-days", "2",
                "-subj", f"/CN={cn}",
                "-addext", "basicConstraints=critical,CA:TRUE",
                "-addext", "keyUsage=critical,keyCertSign,cRLSign",
            ],
            directory,
        )  # fmt: skip

    def leaf(name: str, cn: str, ca_name: str, ext: str, key_password: str | None) -> None:
        (directory / f"{name}.ext").write_text(
            f"{ext}\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid,issuer\n"
        )
        _run(
            [
                "openssl", "req", *NEW_KEY, "-nodes",
                "-keyout", f"{name}.plain.key", "-out", f"{name}.csr", "-subj", f"/CN={cn}",
            ],
            directory,
        )  # fmt: skip
        _run(
            [
                "openssl", "x509", "-req", "-in", f"{name}.csr",
                "-CA", f"{ca_name}.pem", "-CAkey", f"{ca_name}.key", "-set_serial",
                str(uuid.uuid4().int >> 64), "-days", "2", "-sha256",
                "-extfile", f"{name}.ext", "-out", f"{name}.pem",
            ],
            directory,
        )  # fmt: skip
        # PKCS#8, as Kafka's PEM keystore requires; encrypted when a password is given.
        args = ["openssl", "pkcs8", "-topk8", "-in", f"{name}.plain.key", "-out", f"{name}.key"]
        args += ["-passout", f"pass:{key_password}"] if key_password else ["-nocrypt"]
        _run(args, directory)

    ca("ca", "streamproc test CA")
    ca("other-ca", "unrelated test CA")
    leaf(
        "broker",
        "localhost",
        "ca",
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth",
        None,
    )
    leaf("client", "streamproc-client", "ca", "extendedKeyUsage=clientAuth", CLIENT_KEY_PASSWORD)
    leaf("rogue", "rogue-client", "other-ca", "extendedKeyUsage=clientAuth", None)
    return Pki(
        ca=directory / "ca.pem",
        other_ca=directory / "other-ca.pem",
        broker_cert=directory / "broker.pem",
        broker_key=directory / "broker.key",
        client_cert=directory / "client.pem",
        client_key=directory / "client.key",
        rogue_cert=directory / "rogue.pem",
        rogue_key=directory / "rogue.key",
    )


def _inline(path: Path) -> str:
    """A PEM file as one Java-properties value (``\\n`` escapes are read back as newlines)."""
    return path.read_text().strip().replace("\n", "\\n")


def extra_properties(base_port: int, pki: Pki) -> str:
    """What is appended to kafka-local's server.properties (later keys win in Java)."""
    p = base_port
    plain_name, plain_password = PLAIN_USER
    jaas_plain = (
        "org.apache.kafka.common.security.plain.PlainLoginModule required "
        f'user_{plain_name}="{plain_password}";'
    )
    jaas_scram = "org.apache.kafka.common.security.scram.ScramLoginModule required;"
    return "\n".join(
        [
            "# --- tests/integration/security/broker.py ---",
            f"listeners=PLAINTEXT://127.0.0.1:{p},CONTROLLER://127.0.0.1:{p + 1},"
            f"SASL_SSL://127.0.0.1:{p + 2},SSL://127.0.0.1:{p + 3}",
            f"advertised.listeners=PLAINTEXT://127.0.0.1:{p},SASL_SSL://127.0.0.1:{p + 2},"
            f"SSL://127.0.0.1:{p + 3}",
            "sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256,SCRAM-SHA-512",
            f"listener.name.sasl_ssl.plain.sasl.jaas.config={jaas_plain}",
            f"listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config={jaas_scram}",
            f"listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config={jaas_scram}",
            "listener.name.ssl.ssl.client.auth=required",
            "ssl.keystore.type=PEM",
            f"ssl.keystore.certificate.chain={_inline(pki.broker_cert)}",
            f"ssl.keystore.key={_inline(pki.broker_key)}",
            "ssl.truststore.type=PEM",
            f"ssl.truststore.certificates={_inline(pki.ca)}",
            "",
        ]
    )


def _free_base_port() -> int:
    """A port ``P`` with ``P..P+3`` all free (kafka-local checks only ``P`` itself)."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            base = int(probe.getsockname()[1])
        if base + 3 > 65_535:
            continue
        try:
            for port in range(base, base + 4):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", port))
        except OSError:
            continue
        return base
    raise RuntimeError("no four consecutive free ports on 127.0.0.1")


def _env(home: Path, port: int, extra: Path | None) -> dict[str, str]:
    env = {
        **os.environ,
        "KAFKA_PORT": str(port),
        "KAFKA_HOME": str(home),
        # A test broker holds a few records; a small heap starts faster.
        "KAFKA_HEAP": "384m",
    }
    if extra is not None:
        env["KAFKA_EXTRA_PROPERTIES"] = str(extra)
    return env


def new_cluster_id(draw: Callable[[], bytes] = lambda: uuid.uuid4().bytes) -> str:
    """A random KRaft cluster id (16 bytes, URL-safe base64 unpadded) with no ``-`` in it.

    One such id in 64 starts with ``-``, which the storage tool's parser reads as a flag
    (``argument --cluster-id/-t: expected one argument``: every security test errored at
    setup). Kafka's own ``random-uuid`` draws again in that case; so does this, and for a
    ``-`` anywhere, as newer Kafka does, so the id is safe in any argv position.
    """
    while True:
        cluster_id = base64.urlsafe_b64encode(draw()).rstrip(b"=").decode()
        if "-" not in cluster_id:
            return cluster_id


def format_args(libs: str, cluster_id: str, server_properties: Path) -> list[str]:
    """The storage tool's ``format`` command line, SCRAM users included.

    The id is glued to its option (``--cluster-id=<id>``), so even an id that looks like a
    flag is read as the option's value.
    """
    args = [
        "java",
        "-cp",
        f"{libs}/*",
        "kafka.tools.StorageTool",
        "format",
        f"--cluster-id={cluster_id}",
        f"--config={server_properties}",
    ]
    for mechanism, name, password in SCRAM_USERS:
        args.append(f"--add-scram={mechanism}=[name={name},password={password}]")
    return args


def _format(home: Path, libs: str, server_properties: Path) -> None:
    """Format the KRaft log dir with the SCRAM users, as kafka-local would without them."""
    _run(format_args(libs, new_cluster_id(), server_properties), home)


def _format_properties(home: Path, base_port: int, extra: str) -> str:
    # The keys kafka-local's server.properties has that the format step reads; node id and
    # log dir must be the script's (1 and $KAFKA_HOME/data) for it to accept the format.
    return "\n".join(
        [
            "process.roles=broker,controller",
            "node.id=1",
            f"controller.quorum.voters=1@127.0.0.1:{base_port + 1}",
            "controller.listener.names=CONTROLLER",
            "inter.broker.listener.name=PLAINTEXT",
            "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,"
            "SSL:SSL,SASL_SSL:SASL_SSL",
            f"log.dirs={home / 'data'}",
            extra,
        ]
    )


def start_secure_broker(home: Path) -> SecureBroker:
    """Generate certificates, format with SCRAM users, start; blocks until it answers."""
    home.mkdir(parents=True, exist_ok=True)
    pki = make_pki(home / "pki")
    base = _free_base_port()
    extra = extra_properties(base, pki)
    extra_file = home / "extra.properties"
    extra_file.write_text(extra)
    libs = _run([str(KAFKA_LOCAL), "fetch"], ROOT).strip().splitlines()[-1]
    (home / "data").mkdir(exist_ok=True)
    format_file = home / "format.properties"
    format_file.write_text(_format_properties(home, base, extra))
    _format(home, libs, format_file)
    try:
        _run([str(KAFKA_LOCAL), "start"], ROOT, _env(home, base, extra_file))
    except RuntimeError:
        stop_secure_broker(home, base)
        raise
    return SecureBroker(
        home=home,
        plaintext=f"127.0.0.1:{base}",
        sasl_ssl=f"127.0.0.1:{base + 2}",
        ssl=f"127.0.0.1:{base + 3}",
        pki=pki,
    )


def stop_secure_broker(home: Path, base_port: int) -> None:
    """Stop the broker by the pid kafka-local recorded in ``home``."""
    subprocess.run(
        [str(KAFKA_LOCAL), "stop"],
        cwd=ROOT,
        env=_env(home, base_port, None),
        check=False,
        capture_output=True,
    )


def main(argv: list[str]) -> int:  # pragma: no cover - a manual tool
    if len(argv) != 2:
        print("usage: python -m tests.integration.security.broker DIR", file=sys.stderr)
        return 2
    broker = start_secure_broker(Path(argv[1]).resolve())
    user = SCRAM_USERS[0]
    print(
        f"SASL_SSL {broker.sasl_ssl}  SSL(mTLS) {broker.ssl}  PLAINTEXT {broker.plaintext}\n"
        f"STREAMPROC_BOOTSTRAP_SERVERS={broker.sasl_ssl} STREAMPROC_SECURITY_PROTOCOL=SASL_SSL "
        f"STREAMPROC_SASL_MECHANISM={user[0]} STREAMPROC_SASL_USERNAME={user[1]} "
        f"STREAMPROC_SASL_PASSWORD={user[2]} STREAMPROC_SSL_CAFILE={broker.pki.ca}\n"
        f"stop: KAFKA_PORT={broker.plaintext.rsplit(':', 1)[1]} KAFKA_HOME={broker.home} "
        f"{KAFKA_LOCAL} stop"
    )
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main(sys.argv))
