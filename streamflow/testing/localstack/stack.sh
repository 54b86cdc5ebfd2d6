#!/usr/bin/env bash
# streamflow local stack: a single-node Apache Kafka (KRaft, combined broker+controller) and an
# Apicurio Registry (Confluent-compatible API) running as plain JVMs from Maven Central jars.
#
#   streamflow stack up        start (or reuse) the stack, print and write <run dir>/stack.env
#   streamflow stack down      stop both JVMs (SIGTERM, then SIGKILL after a timeout)
#   streamflow stack restart   down, then up: topics, offsets and schemas are kept
#   streamflow stack wipe      down, then delete all topics, offsets and schemas
#   streamflow stack status    exit 0 only when both services are healthy
#   streamflow stack logs [kafka|registry] [-f]
#   streamflow stack env       print `export ...` lines for the running stack
#
#   --secure (with any command): the secured stack instead, a second, separate Kafka with a
#   SASL_SSL listener (SCRAM-SHA-512 users admin and app, a self-signed TLS certificate), the
#   standard authorizer (no ACL: no access; admin is a super user) and no registry. Its own run
#   dir (<run dir>-secure) and ports (19192/19193), so both stacks can run side by side.
#
# (deploy/local/stack in a checkout.) The run dir is STREAMFLOW_STACK_RUN_DIR, else
# ./.streamflow/stack. See deploy/local/README.md for the variables it understands.
set -euo pipefail

SECURE="${STREAMFLOW_STACK_SECURE:-0}"
ARGS=()
for _arg in "$@"; do
    if [[ "$_arg" == --secure ]]; then SECURE=1; else ARGS+=("$_arg"); fi
done

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# in a checkout this is the repository (its .venv has confluent_kafka for the health check)
REPO_ROOT="$(cd "$HERE/../../.." && pwd)"
POM="$HERE/pom.xml"
# the project's own folder by default (`streamflow stack` from an installed package);
# the repository's deploy/local/stack sets deploy/local/.run
RUN_DIR="${STREAMFLOW_STACK_RUN_DIR:-$PWD/.streamflow/stack}"
if [[ "$SECURE" == 1 ]]; then RUN_DIR="${STREAMFLOW_STACK_SECURE_RUN_DIR:-${RUN_DIR%/}-secure}"; fi
LOG_DIR="$RUN_DIR/logs"
ENV_FILE="$RUN_DIR/stack.env"
PORTS_FILE="$RUN_DIR/ports.env"
TIMES_FILE="$RUN_DIR/startup-times"
LOCK_FILE="$RUN_DIR/stack.lock"
LIBS_DIR="$RUN_DIR/kafka-libs"
DOWNLOAD_DIR="$RUN_DIR/downloads"
KAFKA_DIR="$RUN_DIR/kafka"
REGISTRY_DIR="$RUN_DIR/registry"

START_TIMEOUT="${STREAMFLOW_STACK_TIMEOUT:-120}"
STOP_TIMEOUT="${STREAMFLOW_STACK_STOP_TIMEOUT:-20}"
KAFKA_HEAP="${STREAMFLOW_STACK_KAFKA_HEAP:-512m}"
REGISTRY_HEAP="${STREAMFLOW_STACK_REGISTRY_HEAP:-512m}"

DEFAULT_KAFKA_PORT=19092
DEFAULT_CONTROLLER_PORT=19093
DEFAULT_REGISTRY_PORT=18081
DEFAULT_REGISTRY_MGMT_PORT=18082

SERVICES=(kafka registry)
# the env variables that choose the Kafka ports
KAFKA_PORT_ENV=STREAMFLOW_STACK_KAFKA_PORT
CONTROLLER_PORT_ENV=STREAMFLOW_STACK_KAFKA_CONTROLLER_PORT
if [[ "$SECURE" == 1 ]]; then
    DEFAULT_KAFKA_PORT=19192
    DEFAULT_CONTROLLER_PORT=19193
    SERVICES=(kafka)
    KAFKA_PORT_ENV=STREAMFLOW_STACK_SECURE_KAFKA_PORT
    CONTROLLER_PORT_ENV=STREAMFLOW_STACK_SECURE_KAFKA_CONTROLLER_PORT
fi
SECRETS_FILE="$RUN_DIR/secrets.env"
TLS_DIR="$RUN_DIR/tls"
APP_ENV_FILE="$RUN_DIR/app.env"

# --------------------------------------------------------------------------------------------
# small helpers
# --------------------------------------------------------------------------------------------
log() { printf '[stack] %s\n' "$*" >&2; }
die() { printf '[stack] ERROR: %s\n' "$*" >&2; exit 1; }
now() { printf '%s' "${EPOCHREALTIME/,/.}"; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

pom_property() { # pom_property <name> -> value of <name>...</name> in pom.xml
    sed -n "s:.*<$1>\\(.*\\)</$1>.*:\\1:p" "$POM" | head -n 1
}

# Python used for health checks / port probes: the repo venv (has confluent_kafka) if present.
PYTHON=""
PYTHON_HAS_KAFKA=0
find_python() {
    local cand
    for cand in "${STREAMFLOW_PYTHON:-}" "$REPO_ROOT/.venv/bin/python" python3 python; do
        [[ -n "$cand" ]] || continue
        if command -v "$cand" >/dev/null 2>&1 || [[ -x "$cand" ]]; then
            if "$cand" -c 'import confluent_kafka' >/dev/null 2>&1; then
                PYTHON="$cand"; PYTHON_HAS_KAFKA=1; return 0
            fi
            [[ -n "$PYTHON" ]] || PYTHON="$cand"
        fi
    done
    return 0
}

java_major() { # java_major <java binary> -> major version (17, 21, 25 ...) or nothing
    "$1" -XshowSettings:properties -version 2>&1 \
        | sed -n 's/^ *java\.specification\.version = \([0-9.]*\).*/\1/p' | head -n 1 \
        | sed 's/^1\.//; s/\..*//'
}

KAFKA_JAVA=""
REGISTRY_JAVA=""
find_java() {
    local cand major
    # Kafka 4.x: Java 17+.
    for cand in "${STREAMFLOW_STACK_KAFKA_JAVA:-}" "${JAVA_HOME:+$JAVA_HOME/bin/java}" "$(command -v java || true)"; do
        [[ -n "$cand" && -x "$cand" ]] || continue
        major="$(java_major "$cand")"
        if [[ -n "$major" && "$major" -ge 17 ]]; then KAFKA_JAVA="$cand"; break; fi
    done
    # Apicurio Registry 3.2+: Java 21+. Prefer an explicit choice, then PATH, then installed JDKs.
    local candidates=("${STREAMFLOW_STACK_REGISTRY_JAVA:-}" "${JAVA_HOME:+$JAVA_HOME/bin/java}" "$(command -v java || true)")
    local d
    # shellcheck disable=SC2086 # globs are meant to expand
    for d in ${STREAMFLOW_STACK_JDK_SEARCH:-/usr/lib/jvm/*/bin/java /opt/java/*/bin/java /opt/*/bin/java $HOME/.sdkman/candidates/java/*/bin/java}; do
        if [[ -x "$d" ]]; then candidates+=("$d"); fi
    done
    local best="" best_major=0
    for cand in "${candidates[@]}"; do
        [[ -n "$cand" && -x "$cand" ]] || continue
        major="$(java_major "$cand")"
        [[ -n "$major" ]] || continue
        if [[ -n "${STREAMFLOW_STACK_REGISTRY_JAVA:-}" && "$cand" == "$STREAMFLOW_STACK_REGISTRY_JAVA" && "$major" -ge 21 ]]; then
            best="$cand"; best_major="$major"; break
        fi
        if [[ "$major" -ge 21 && "$major" -gt "$best_major" ]]; then best="$cand"; best_major="$major"; fi
    done
    REGISTRY_JAVA="$best"
}

require_tools() {
    find_java
    if [[ -z "$KAFKA_JAVA" ]]; then
        if command -v java >/dev/null 2>&1; then
            die "Kafka 4.x needs Java 17 or newer; found $(java -version 2>&1 | head -n 1). Install a JDK 17+ (e.g. apt-get install openjdk-17-jre-headless) or set STREAMFLOW_STACK_KAFKA_JAVA=/path/to/bin/java."
        fi
        die "no 'java' found. Install a JDK 17+ for Kafka (e.g. apt-get install openjdk-17-jre-headless) and a JDK 21+ for Apicurio Registry, or set STREAMFLOW_STACK_KAFKA_JAVA / STREAMFLOW_STACK_REGISTRY_JAVA."
    fi
    if [[ -z "$REGISTRY_JAVA" && "$SECURE" != 1 ]]; then
        die "Apicurio Registry $(pom_property apicurio.version) needs Java 21 or newer, and none was found (looked at STREAMFLOW_STACK_REGISTRY_JAVA, JAVA_HOME, PATH and /usr/lib/jvm/*). Install a JDK 21+ (e.g. Temurin 21/25) or set STREAMFLOW_STACK_REGISTRY_JAVA=/path/to/jdk-21+/bin/java."
    fi
    command -v curl >/dev/null 2>&1 || die "'curl' is needed for the registry health check; install curl."
    command -v setsid >/dev/null 2>&1 || die "'setsid' (util-linux) is needed; install util-linux."
    command -v flock >/dev/null 2>&1 || die "'flock' (util-linux) is needed; install util-linux."
}

# --------------------------------------------------------------------------------------------
# processes: every JVM carries -Dstreamflow.stack=<run dir>/<service> so it can be found again
# --------------------------------------------------------------------------------------------
marker() { printf -- '-Dstreamflow.stack=%s/%s' "$RUN_DIR" "$1"; }
pid_file() { printf '%s/%s.pid' "$RUN_DIR" "$1"; }

has_marker() { # has_marker <pid> <service>
    [[ -r "/proc/$1/cmdline" ]] || return 1
    tr '\0' '\n' <"/proc/$1/cmdline" 2>/dev/null | grep -qxF -- "$(marker "$2")"
}

marker_pids() { # all live processes carrying the service marker (pid file or not)
    local p
    for p in $(pgrep -f -- '-Dstreamflow.stack=' 2>/dev/null || true); do
        has_marker "$p" "$1" && printf '%s\n' "$p"
    done
    return 0
}

service_pid() { # prints the pid of the running service (cleaning stale pid files), or fails
    local svc="$1" pf pid
    pf="$(pid_file "$svc")"
    if [[ -f "$pf" ]]; then
        pid="$(tr -dc '0-9' <"$pf")"
        if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null && has_marker "$pid" "$svc"; then
            printf '%s' "$pid"; return 0
        fi
        log "$svc: removing stale pid file (pid ${pid:-?} is gone or is not a stack JVM)"
        rm -f "$pf"
    fi
    # no (valid) pid file: adopt a running JVM of ours, e.g. after the pid file was deleted
    pid="$(marker_pids "$svc" | head -n 1)"
    if [[ -n "$pid" ]]; then
        printf '%s\n' "$pid" >"$pf"
        printf '%s' "$pid"; return 0
    fi
    return 1
}

# --------------------------------------------------------------------------------------------
# ports
# --------------------------------------------------------------------------------------------
KAFKA_PORT="" CONTROLLER_PORT="" REGISTRY_PORT="" REGISTRY_MGMT_PORT=""

load_ports() {
    if [[ -f "$PORTS_FILE" ]]; then
        # shellcheck disable=SC1090
        . "$PORTS_FILE"
    fi
}

save_ports() {
    cat >"$PORTS_FILE" <<EOF
KAFKA_PORT=$KAFKA_PORT
CONTROLLER_PORT=$CONTROLLER_PORT
REGISTRY_PORT=$REGISTRY_PORT
REGISTRY_MGMT_PORT=$REGISTRY_MGMT_PORT
EOF
}

port_free() { # port_free <port>: nothing listens on / is bound to 127.0.0.1:<port>
    local p="$1"
    if [[ -n "$PYTHON" ]]; then
        "$PYTHON" - "$p" <<'EOF' 2>/dev/null
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError:
    sys.exit(1)
finally:
    s.close()
EOF
        return $?
    fi
    ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null
}

random_free_port() {
    local p _
    for _ in $(seq 1 200); do
        p=$(( 20000 + RANDOM % 40000 ))
        if port_free "$p" && ! [[ " $TAKEN_PORTS " == *" $p "* ]]; then printf '%s' "$p"; return 0; fi
    done
    return 1
}

TAKEN_PORTS=""
choose_port() { # choose_port <result var> <label> <env var name> <previous> <default>
    local var="$1" label="$2" envname="$3" previous="$4" default="$5" want p
    want="${!envname:-}"
    if [[ -n "$want" ]]; then
        [[ "$want" =~ ^[0-9]+$ ]] || die "$envname=$want is not a port number"
        port_free "$want" || die "$envname=$want: port $want is already in use (choose another or unset it)"
        TAKEN_PORTS+=" $want"; printf -v "$var" '%s' "$want"; return 0
    fi
    for p in "$default" "$previous"; do
        [[ -n "$p" ]] || continue
        if port_free "$p" && ! [[ " $TAKEN_PORTS " == *" $p "* ]]; then
            TAKEN_PORTS+=" $p"; printf -v "$var" '%s' "$p"; return 0
        fi
    done
    p="$(random_free_port)" || die "could not find a free port for $label"
    log "$label: port $default is in use, using free port $p instead (set $envname to choose)"
    TAKEN_PORTS+=" $p"; printf -v "$var" '%s' "$p"
}

warn_port_override() { # the service is already running: env overrides cannot apply
    local envname="$1" running="$2" want
    want="${!envname:-}"
    if [[ -n "$want" && "$want" != "$running" ]]; then
        log "WARNING: $envname=$want ignored: the running stack uses $running (run 'stack down' first)"
    fi
}

# --------------------------------------------------------------------------------------------
# health
# --------------------------------------------------------------------------------------------
tcp_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

kafka_healthy() {
    [[ -n "$KAFKA_PORT" ]] || return 1
    tcp_open "$KAFKA_PORT" || return 1
    if [[ "$PYTHON_HAS_KAFKA" == 1 ]]; then
        # the secured stack's admin settings come through the environment, never argv
        STACK_CLIENT_CONF="$(client_conf_json)" "$PYTHON" - "127.0.0.1:$KAFKA_PORT" >/dev/null 2>&1 <<'EOF'
import json, os, sys
from confluent_kafka.admin import AdminClient
admin = AdminClient({"bootstrap.servers": sys.argv[1], "socket.timeout.ms": 3000,
                     "socket.connection.setup.timeout.ms": 3000, "log_level": 0,
                     **json.loads(os.environ.get("STACK_CLIENT_CONF") or "{}")})
md = admin.list_topics(timeout=4)
sys.exit(0 if md.brokers else 1)
EOF
        return $?
    fi
    grep -q 'Kafka Server started' "$LOG_DIR/kafka.log" 2>/dev/null
}

registry_healthy() {
    [[ -n "$REGISTRY_PORT" ]] || return 1
    local code
    code="$(curl -s -o /dev/null -w '%{http_code}' --max-time 3 \
        "http://127.0.0.1:$REGISTRY_PORT/apis/ccompat/v7/subjects" 2>/dev/null || true)"
    [[ "$code" == 200 ]]
}

healthy() { "$1_healthy"; }

# --------------------------------------------------------------------------------------------
# artifacts (Maven)
# --------------------------------------------------------------------------------------------
KAFKA_VERSION="" APICURIO_VERSION=""

resolve_artifacts() {
    KAFKA_VERSION="${STREAMFLOW_STACK_KAFKA_VERSION:-$(pom_property kafka.version)}"
    APICURIO_VERSION="${STREAMFLOW_STACK_APICURIO_VERSION:-$(pom_property apicurio.version)}"
    local stamp_file="$RUN_DIR/artifacts.stamp" stamp tarball
    stamp="$(sha256sum "$POM" | cut -d' ' -f1) kafka=$KAFKA_VERSION apicurio=$APICURIO_VERSION"
    tarball="$DOWNLOAD_DIR/apicurio-registry-app-$APICURIO_VERSION-all.tar.gz"
    # the secured stack runs no registry: Kafka's jars only
    local -a goals=(dependency:copy-dependencies@kafka-libs dependency:copy@apicurio)
    if [[ "$SECURE" == 1 ]]; then goals=(dependency:copy-dependencies@kafka-libs); tarball="$POM"; fi
    if [[ -f "$stamp_file" && "$(cat "$stamp_file")" == "$stamp" && -f "$tarball" ]] \
        && compgen -G "$LIBS_DIR/kafka_2.13-$KAFKA_VERSION.jar" >/dev/null; then
        return 0
    fi
    command -v mvn >/dev/null 2>&1 || die "Maven ('mvn') is needed once to fetch the Kafka and Apicurio jars from Maven Central: install Maven 3.6+ (e.g. apt-get install maven)."
    log "resolving Kafka $KAFKA_VERSION and Apicurio Registry $APICURIO_VERSION from Maven Central (cached in ~/.m2) ..."
    local t0; t0="$(now)"
    rm -rf "$LIBS_DIR"
    mkdir -p "$LIBS_DIR" "$DOWNLOAD_DIR"
    local mvn_log="$LOG_DIR/maven.log"
    # MAVEN_ARGS lets callers add e.g. -o (offline) or -Dmaven.repo.local=...
    # shellcheck disable=SC2086
    if ! JAVA_HOME="$(dirname "$(dirname "$(readlink -f "$KAFKA_JAVA")")")" \
        mvn -B -q -f "$POM" ${STREAMFLOW_STACK_MAVEN_ARGS:-} \
        "-Drun.dir=$RUN_DIR" "-Dkafka.version=$KAFKA_VERSION" "-Dapicurio.version=$APICURIO_VERSION" \
        "${goals[@]}" >"$mvn_log" 2>&1; then
        tail -n 30 "$mvn_log" >&2
        die "Maven could not resolve the stack's artifacts (full log: $mvn_log)"
    fi
    [[ -f "$tarball" ]] || die "Maven finished but $tarball is missing (see $mvn_log)"
    printf '%s\n' "$stamp" >"$stamp_file"
    local sizes; sizes="kafka-libs $(du -sh "$LIBS_DIR" | cut -f1)"
    if [[ "$SECURE" != 1 ]]; then sizes+=", registry $(du -sh "$tarball" | cut -f1)"; fi
    log "artifacts resolved in $(elapsed "$t0" "$(now)")s: $sizes"
}

REGISTRY_JAR=""
unpack_registry() {
    local dest="$REGISTRY_DIR/app-$APICURIO_VERSION"
    if [[ ! -f "$dest/.unpacked" ]]; then
        rm -rf "$dest"; mkdir -p "$dest"
        tar -xzf "$DOWNLOAD_DIR/apicurio-registry-app-$APICURIO_VERSION-all.tar.gz" -C "$dest"
        touch "$dest/.unpacked"
    fi
    REGISTRY_JAR="$(find "$dest" -maxdepth 3 -name quarkus-run.jar | head -n 1)"
    [[ -n "$REGISTRY_JAR" ]] || die "quarkus-run.jar not found in the Apicurio assembly under $dest"
}

# --------------------------------------------------------------------------------------------
# the secured stack (--secure): passwords, TLS, listener, env files
# --------------------------------------------------------------------------------------------
ADMIN_PASSWORD="" APP_PASSWORD="" STORE_PASSWORD=""

random_secret() { head -c 24 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 24; }

load_secrets() { # generated once per run dir, kept (mode 600) across down/up and wipe
    mkdir -p "$RUN_DIR"
    if [[ ! -f "$SECRETS_FILE" ]]; then
        (umask 077; cat >"$SECRETS_FILE" <<EOF
ADMIN_PASSWORD=$(random_secret)
APP_PASSWORD=$(random_secret)
STORE_PASSWORD=$(random_secret)
EOF
        )
    fi
    # shellcheck disable=SC1090
    . "$SECRETS_FILE"
}

make_tls() { # a self-signed certificate for 127.0.0.1/localhost; clients trust tls/ca.pem
    [[ -f "$TLS_DIR/broker.p12" && -f "$TLS_DIR/ca.pem" ]] && return 0
    local keytool; keytool="$(dirname "$(readlink -f "$KAFKA_JAVA")")/keytool"
    [[ -x "$keytool" ]] || keytool="$(command -v keytool || true)"
    [[ -n "$keytool" ]] || die "the secured stack needs the JDK's keytool to make its TLS certificate; install a full JDK 17+"
    rm -rf "$TLS_DIR"; mkdir -p "$TLS_DIR"; chmod 700 "$TLS_DIR"
    "$keytool" -genkeypair -noprompt -alias broker -keyalg RSA -keysize 2048 -validity 3650 \
        -dname "CN=streamflow-local-broker" -ext "SAN=ip:127.0.0.1,dns:localhost" \
        -ext "BC:c=ca:true" -storetype PKCS12 -keystore "$TLS_DIR/broker.p12" \
        -storepass "$STORE_PASSWORD" >"$LOG_DIR/keytool.log" 2>&1 \
        || { cat "$LOG_DIR/keytool.log" >&2; die "keytool could not create the broker certificate"; }
    "$keytool" -exportcert -rfc -alias broker -keystore "$TLS_DIR/broker.p12" \
        -storepass "$STORE_PASSWORD" -file "$TLS_DIR/ca.pem" >>"$LOG_DIR/keytool.log" 2>&1 \
        || { cat "$LOG_DIR/keytool.log" >&2; die "keytool could not export the certificate"; }
}

listener_config() { # the listener lines of server.properties
    if [[ "$SECURE" != 1 ]]; then
        cat <<EOF
listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
EOF
        return 0
    fi
    # clients: SASL_SSL with SCRAM-SHA-512; the controller listener stays PLAINTEXT on loopback
    # (SCRAM cannot authenticate it), so the broker reaches its controller as ANONYMOUS
    cat <<EOF
listeners=SASL_SSL://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$CONTROLLER_PORT
advertised.listeners=SASL_SSL://127.0.0.1:$KAFKA_PORT
inter.broker.listener.name=SASL_SSL
listener.security.protocol.map=CONTROLLER:PLAINTEXT,SASL_SSL:SASL_SSL
sasl.enabled.mechanisms=SCRAM-SHA-512
sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="$ADMIN_PASSWORD";
ssl.keystore.type=PKCS12
ssl.keystore.location=$TLS_DIR/broker.p12
ssl.keystore.password=$STORE_PASSWORD
ssl.truststore.type=PEM
ssl.truststore.location=$TLS_DIR/ca.pem
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
super.users=User:admin;User:ANONYMOUS
allow.everyone.if.no.acl.found=false
EOF
}

client_conf_json() { # the health check's admin settings ({} for the plaintext stack)
    if [[ "$SECURE" != 1 ]]; then printf '{}'; return 0; fi
    printf '{"security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-512", "sasl.username": "admin", "sasl.password": "%s", "ssl.ca.location": "%s"}' \
        "$ADMIN_PASSWORD" "$TLS_DIR/ca.pem"
}

write_secure_env_files() { # stack.env: the admin (super user); app.env: app, no ACLs of its own
    local user pass file
    for user in admin app; do
        if [[ "$user" == admin ]]; then pass="$ADMIN_PASSWORD"; file="$ENV_FILE"; else pass="$APP_PASSWORD"; file="$APP_ENV_FILE"; fi
        (umask 077; cat >"$file.tmp" <<EOF
STREAMFLOW_BOOTSTRAP_SERVERS=127.0.0.1:$KAFKA_PORT
STREAMFLOW_KAFKA_SECURITY_PROTOCOL=SASL_SSL
STREAMFLOW_KAFKA_SASL_MECHANISM=SCRAM-SHA-512
STREAMFLOW_KAFKA_SASL_USERNAME=$user
STREAMFLOW_KAFKA_SASL_PASSWORD=$pass
STREAMFLOW_KAFKA_SSL_CA_LOCATION=$TLS_DIR/ca.pem
EOF
        )
        mv "$file.tmp" "$file"
    done
}

# --------------------------------------------------------------------------------------------
# starting
# --------------------------------------------------------------------------------------------
write_kafka_config() {
    local conf="$KAFKA_DIR/config"
    mkdir -p "$conf"
    cat >"$conf/server.properties" <<EOF
# generated by streamflow's local stack -- single node, KRaft combined mode
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:$CONTROLLER_PORT
controller.listener.names=CONTROLLER
$(listener_config)
log.dirs=$KAFKA_DIR/data
num.partitions=1
default.replication.factor=1
min.insync.replicas=1
# a client must not re-create a topic with the wrong partitions or cleanup policy
auto.create.topics.enable=false
delete.topic.enable=true
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
share.coordinator.state.topic.num.partitions=1
group.initial.rebalance.delay.ms=0
# tests and demos replay event times from the past; time-based retention would delete them
# mid-test
log.retention.ms=-1
num.network.threads=2
num.io.threads=4
num.recovery.threads.per.data.dir=1
EOF
    # the secured stack's file holds the admin and key store passwords
    if [[ "$SECURE" == 1 ]]; then chmod 600 "$conf/server.properties"; fi
    cat >"$conf/log4j2.properties" <<EOF
# generated by streamflow's local stack; root level: STREAMFLOW_STACK_KAFKA_LOG_LEVEL (default WARN)
status = warn
name = streamflow-local-kafka
appender.out.type = Console
appender.out.name = OUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = ${STREAMFLOW_STACK_KAFKA_LOG_LEVEL:-WARN}
rootLogger.appenderRef.out.ref = OUT
logger.raftserver.name = kafka.server.KafkaRaftServer
logger.raftserver.level = INFO
logger.broker.name = kafka.server.BrokerServer
logger.broker.level = INFO
logger.controller.name = kafka.server.ControllerServer
logger.controller.level = INFO
EOF
}

kafka_jvm_opts() {
    printf '%s\n' -Xms128m "-Xmx$KAFKA_HEAP" \
        -Djava.awt.headless=true "-Djava.io.tmpdir=$KAFKA_DIR/tmp" \
        "-Dlog4j2.configurationFile=$KAFKA_DIR/config/log4j2.properties" -Dlog4j2.shutdownHookEnabled=false \
        "-Dkafka.logs.dir=$LOG_DIR" -cp "$LIBS_DIR/*"
}

format_kafka_storage() { # once: the data survives down/up and restart; `wipe` removes it
    mkdir -p "$KAFKA_DIR/data" "$KAFKA_DIR/tmp"
    if [[ -f "$KAFKA_DIR/data/meta.properties" ]]; then
        return 0
    fi
    local -a scram=()
    if [[ "$SECURE" == 1 ]]; then # the SCRAM users exist from the first start on
        scram=(--add-scram "SCRAM-SHA-512=[name=admin,password=$ADMIN_PASSWORD]"
               --add-scram "SCRAM-SHA-512=[name=app,password=$APP_PASSWORD]")
    fi
    local cluster_id
    cluster_id="$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')"
    while [[ "$cluster_id" == -* ]]; do
        cluster_id="$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')"
    done
    local -a opts; mapfile -t opts < <(kafka_jvm_opts)
    # a short-lived JVM: C1 only and serial GC start faster
    if ! "$KAFKA_JAVA" -XX:TieredStopAtLevel=1 -XX:+UseSerialGC "${opts[@]}" kafka.tools.StorageTool format --standalone \
        -t "$cluster_id" -c "$KAFKA_DIR/config/server.properties" --ignore-formatted "${scram[@]}" \
        >"$LOG_DIR/kafka-format.log" 2>&1 9>&-; then
        cat "$LOG_DIR/kafka-format.log" >&2
        die "kafka: formatting the storage directory failed"
    fi
}

launch() { # launch <service> <command...>: detached (own session / process group), pid file
    local svc="$1"; shift
    : >"$LOG_DIR/$svc.log"
    setsid "$@" </dev/null >>"$LOG_DIR/$svc.log" 2>&1 9>&- &
    local pid=$!
    printf '%s\n' "$pid" >"$(pid_file "$svc")"
}

KAFKA_FORMAT_S=""
start_kafka() {
    if [[ "$SECURE" == 1 ]]; then load_secrets; make_tls; fi
    write_kafka_config
    local t0; t0="$(now)"
    format_kafka_storage
    KAFKA_FORMAT_S="$(elapsed "$t0" "$(now)")"
    local -a opts; mapfile -t opts < <(kafka_jvm_opts)
    launch kafka "$KAFKA_JAVA" "$(marker kafka)" -XX:+UseG1GC -XX:MaxGCPauseMillis=20 "${opts[@]}" kafka.Kafka "$KAFKA_DIR/config/server.properties"
}

start_registry() {
    mkdir -p "$REGISTRY_DIR/tmp" "$REGISTRY_DIR/db"
    local -a extra=()
    local major; major="$(java_major "$REGISTRY_JAVA")"
    if [[ "$major" -ge 24 ]]; then
        # silence JEP 471/498 warnings from Netty/Vert.x on Java 24+
        extra+=(--sun-misc-unsafe-memory-access=allow --enable-native-access=ALL-UNNAMED)
    fi
    launch registry "$REGISTRY_JAVA" "$(marker registry)" -Xms64m "-Xmx$REGISTRY_HEAP" \
        -XX:+UseSerialGC -XX:TieredStopAtLevel=1 "${extra[@]}" \
        "-Djava.io.tmpdir=$REGISTRY_DIR/tmp" "-Dvertx.cacheDirBase=$REGISTRY_DIR/tmp/vertx" \
        -Dquarkus.http.host=127.0.0.1 "-Dquarkus.http.port=$REGISTRY_PORT" \
        -Dquarkus.management.host=127.0.0.1 "-Dquarkus.management.port=$REGISTRY_MGMT_PORT" \
        -Dapicurio.rules.global.compatibility=BACKWARD \
        -Dapicurio.storage.kind=sql -Dapicurio.storage.sql.kind=h2 \
        "-Dapicurio.datasource.url=jdbc:h2:file:$REGISTRY_DIR/db/registry" \
        -Dquarkus.http.access-log.enabled="${STREAMFLOW_STACK_REGISTRY_ACCESS_LOG:-false}" \
        '-Dquarkus.log.console.format=%d{yyyy-MM-dd HH:mm:ss,SSS} %p [%c{3.}] (%t) %m%n' \
        -jar "$REGISTRY_JAR"
}

ensure_registry_backward() {
    # The global rule is set with -Dapicurio.rules.global.compatibility=BACKWARD; check it through
    # the ccompat API and set it there if the property was not honoured.
    local url="http://127.0.0.1:$REGISTRY_PORT/apis/ccompat/v7/config" body
    body="$(curl -s --max-time 5 "$url" || true)"
    if [[ "$body" != *'"BACKWARD"'* ]]; then
        log "registry: global compatibility is '${body:-?}', setting BACKWARD through $url"
        curl -s --max-time 5 -X PUT -H 'Content-Type: application/vnd.schemaregistry.v1+json' \
            --data '{"compatibility":"BACKWARD"}' "$url" >/dev/null \
            || die "registry: could not set the global compatibility rule"
    fi
}

stop_services() { # stop_services <service...>
    local svc pid deadline
    local -A pids=()
    for svc in "$@"; do
        local all
        all="$( { service_pid "$svc" 2>/dev/null && echo; marker_pids "$svc"; } | sort -u | tr '\n' ' ')"
        for pid in $all; do
            log "$svc: stopping (pid $pid, SIGTERM)"
            kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
            pids[$pid]="$svc"
        done
    done
    deadline=$(( SECONDS + STOP_TIMEOUT ))
    while (( ${#pids[@]} > 0 )); do
        for pid in "${!pids[@]}"; do
            kill -0 "$pid" 2>/dev/null || unset "pids[$pid]"
        done
        (( ${#pids[@]} > 0 )) || break
        if (( SECONDS >= deadline )); then
            for pid in "${!pids[@]}"; do
                log "${pids[$pid]}: still running after ${STOP_TIMEOUT}s, sending SIGKILL to pid $pid"
                kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
            done
            sleep 1
            for pid in "${!pids[@]}"; do
                kill -0 "$pid" 2>/dev/null || unset "pids[$pid]"
            done
            break
        fi
        sleep 0.25
    done
    for svc in "$@"; do
        rm -f "$(pid_file "$svc")"
        if [[ -n "$(marker_pids "$svc")" ]]; then
            log "ERROR: $svc JVM(s) still alive: $(marker_pids "$svc" | tr '\n' ' ')"
            return 1
        fi
    done
    return 0
}

write_env_file() {
    if [[ "$SECURE" == 1 ]]; then write_secure_env_files; return 0; fi
    cat >"$ENV_FILE.tmp" <<EOF
STREAMFLOW_BOOTSTRAP_SERVERS=127.0.0.1:$KAFKA_PORT
STREAMFLOW_SCHEMA_REGISTRY_URL=http://127.0.0.1:$REGISTRY_PORT/apis/ccompat/v7
EOF
    mv "$ENV_FILE.tmp" "$ENV_FILE"
}

print_summary() {
    if [[ "$SECURE" == 1 ]]; then
        printf 'STREAMFLOW_BOOTSTRAP_SERVERS=127.0.0.1:%s\n' "$KAFKA_PORT"
        log "kafka     : SASL_SSL 127.0.0.1:$KAFKA_PORT (controller 127.0.0.1:$CONTROLLER_PORT), authorizer on"
        log "env files : $ENV_FILE (admin, a super user), $APP_ENV_FILE (app, no ACLs yet); passwords only there"
        return 0
    fi
    printf 'STREAMFLOW_BOOTSTRAP_SERVERS=127.0.0.1:%s\n' "$KAFKA_PORT"
    printf 'STREAMFLOW_SCHEMA_REGISTRY_URL=http://127.0.0.1:%s/apis/ccompat/v7\n' "$REGISTRY_PORT"
    log "kafka     : 127.0.0.1:$KAFKA_PORT (controller 127.0.0.1:$CONTROLLER_PORT)"
    log "registry  : http://127.0.0.1:$REGISTRY_PORT/apis/ccompat/v7 (management 127.0.0.1:$REGISTRY_MGMT_PORT)"
    log "env file  : $ENV_FILE"
}

# --------------------------------------------------------------------------------------------
# commands
# --------------------------------------------------------------------------------------------
cmd_up() {
    mkdir -p "$RUN_DIR" "$LOG_DIR"
    exec 9>"$LOCK_FILE"
    flock -w 600 9 || die "another 'stack up/down' holds $LOCK_FILE"

    find_python
    require_tools
    load_ports
    if [[ "$SECURE" == 1 ]]; then load_secrets; fi

    # 1. what is running already?
    local -a to_start=()
    local svc pid
    for svc in "${SERVICES[@]}"; do
        if pid="$(service_pid "$svc")"; then
            local waited=0
            until healthy "$svc"; do
                if (( waited >= 15 )); then break; fi
                sleep 1; waited=$(( waited + 1 ))
            done
            if healthy "$svc"; then
                log "$svc: already running and healthy (pid $pid), reusing it"
                continue
            fi
            log "$svc: running (pid $pid) but not healthy after ${waited}s, restarting it"
            stop_services "$svc" || die "$svc: could not stop the unhealthy process"
        fi
        to_start+=("$svc")
    done

    if (( ${#to_start[@]} == 0 )); then
        warn_port_override "$KAFKA_PORT_ENV" "$KAFKA_PORT"
        warn_port_override "$CONTROLLER_PORT_ENV" "$CONTROLLER_PORT"
        warn_port_override STREAMFLOW_STACK_REGISTRY_PORT "$REGISTRY_PORT"
        warn_port_override STREAMFLOW_STACK_REGISTRY_MGMT_PORT "$REGISTRY_MGMT_PORT"
        write_env_file
        print_summary
        return 0
    fi

    # 2. ports for the services we start (running ones keep theirs)
    local start_kafka=0 start_registry=0
    for svc in "${to_start[@]}"; do
        case "$svc" in
            kafka) start_kafka=1 ;;
            registry) start_registry=1 ;;
        esac
    done
    if (( start_kafka )); then
        if (( start_registry == 0 )); then TAKEN_PORTS+=" $REGISTRY_PORT $REGISTRY_MGMT_PORT"; fi
        choose_port KAFKA_PORT kafka "$KAFKA_PORT_ENV" "$KAFKA_PORT" $DEFAULT_KAFKA_PORT
        choose_port CONTROLLER_PORT 'kafka controller' "$CONTROLLER_PORT_ENV" "$CONTROLLER_PORT" $DEFAULT_CONTROLLER_PORT
    else
        TAKEN_PORTS+=" $KAFKA_PORT $CONTROLLER_PORT"
    fi
    if (( start_registry )); then
        choose_port REGISTRY_PORT registry STREAMFLOW_STACK_REGISTRY_PORT "$REGISTRY_PORT" $DEFAULT_REGISTRY_PORT
        choose_port REGISTRY_MGMT_PORT 'registry management' STREAMFLOW_STACK_REGISTRY_MGMT_PORT "$REGISTRY_MGMT_PORT" $DEFAULT_REGISTRY_MGMT_PORT
    fi
    save_ports
    rm -f "$ENV_FILE"

    # 3. artifacts, then start both in parallel (registry first: it is the slower one)
    resolve_artifacts
    if (( start_registry )); then unpack_registry; fi
    local -A t_start=() t_ready=()
    if (( start_registry )); then
        log "registry: starting Apicurio Registry $APICURIO_VERSION on 127.0.0.1:$REGISTRY_PORT ($REGISTRY_JAVA, Java $(java_major "$REGISTRY_JAVA"))"
        t_start[registry]="$(now)"
        start_registry
    fi
    if (( start_kafka )); then
        log "kafka: starting Kafka $KAFKA_VERSION (KRaft) on 127.0.0.1:$KAFKA_PORT ($KAFKA_JAVA, Java $(java_major "$KAFKA_JAVA"))"
        t_start[kafka]="$(now)"
        start_kafka
    fi

    # 4. wait for health (both in one loop)
    local -A pending=()
    for svc in "${to_start[@]}"; do pending[$svc]=1; done
    local failed=""
    while (( ${#pending[@]} > 0 )); do
        for svc in "${!pending[@]}"; do
            if healthy "$svc"; then
                t_ready[$svc]="$(now)"
                local note=""
                [[ "$svc" == kafka ]] && note=" (of which ${KAFKA_FORMAT_S}s formatting the storage)"
                log "$svc: healthy after $(elapsed "${t_start[$svc]}" "${t_ready[$svc]}")s$note"
                unset "pending[$svc]"
                continue
            fi
            pid="$(tr -dc '0-9' <"$(pid_file "$svc")" 2>/dev/null || true)"
            if [[ -z "$pid" ]] || ! kill -0 "$pid" 2>/dev/null; then
                log "$svc: process exited during start-up; last lines of $LOG_DIR/$svc.log:"
                tail -n 40 "$LOG_DIR/$svc.log" >&2 || true
                failed+=" $svc"; unset "pending[$svc]"; rm -f "$(pid_file "$svc")"
                continue
            fi
            if awk -v e="$(elapsed "${t_start[$svc]}" "$(now)")" -v t="$START_TIMEOUT" 'BEGIN { exit !(e >= t) }'; then
                log "$svc: not healthy after ${START_TIMEOUT}s; last lines of $LOG_DIR/$svc.log:"
                tail -n 40 "$LOG_DIR/$svc.log" >&2 || true
                stop_services "$svc" || true
                failed+=" $svc"; unset "pending[$svc]"
            fi
        done
        if (( ${#pending[@]} > 0 )); then sleep 0.3; fi
    done
    [[ -z "$failed" ]] || die "start-up failed for:$failed (logs in $LOG_DIR)"

    if (( start_registry )); then ensure_registry_backward; fi
    {
        printf 'measured %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
        for svc in "${to_start[@]}"; do
            if [[ "$svc" == kafka ]]; then
                printf 'kafka %ss (storage format %ss)\n' "$(elapsed "${t_start[$svc]}" "${t_ready[$svc]}")" "$KAFKA_FORMAT_S"
            else
                printf '%s %ss\n' "$svc" "$(elapsed "${t_start[$svc]}" "${t_ready[$svc]}")"
            fi
        done
    } >"$TIMES_FILE"
    write_env_file
    print_summary
}

cmd_down() {
    mkdir -p "$RUN_DIR"
    exec 9>"$LOCK_FILE"
    flock -w 600 9 || die "another 'stack up/down' holds $LOCK_FILE"
    local any=0 svc
    for svc in "${SERVICES[@]}"; do
        if service_pid "$svc" >/dev/null || [[ -n "$(marker_pids "$svc")" ]]; then any=1; fi
    done
    rm -f "$ENV_FILE" "$APP_ENV_FILE"
    if (( any == 0 )); then
        log "stack is not running"
        return 0
    fi
    stop_services "${SERVICES[@]}" || die "some JVMs survived SIGKILL"
    log "stack stopped"
}

cmd_wipe() {
    cmd_down
    exec 9>"$LOCK_FILE"
    flock -w 600 9 || die "another 'stack up/down' holds $LOCK_FILE"
    rm -rf "$KAFKA_DIR/data" "$REGISTRY_DIR/db"
    log "wiped: the next 'up' starts with no topics, offsets or schemas"
}

cmd_status() {
    find_python
    load_ports
    if [[ "$SECURE" == 1 ]]; then load_secrets; fi
    local rc=0 svc pid state
    for svc in "${SERVICES[@]}"; do
        if pid="$(service_pid "$svc" 2>/dev/null)"; then
            if healthy "$svc"; then state="healthy"; else state="UNHEALTHY"; rc=1; fi
            state="$state (pid $pid)"
        else
            state="stopped"; rc=1
        fi
        case "$svc" in
            kafka) printf '%-9s %-24s 127.0.0.1:%s\n' "$svc" "$state" "${KAFKA_PORT:-?}" ;;
            registry) printf '%-9s %-24s http://127.0.0.1:%s/apis/ccompat/v7\n' "$svc" "$state" "${REGISTRY_PORT:-?}" ;;
        esac
    done
    if [[ -f "$TIMES_FILE" ]]; then sed 's/^/  last start-up: /' "$TIMES_FILE"; fi
    return "$rc"
}

cmd_logs() {
    local follow=() files=() arg
    for arg in "$@"; do
        case "$arg" in
            -f|--follow) follow=(-f) ;;
            kafka|registry) files+=("$LOG_DIR/$arg.log") ;;
            *) die "usage: stack logs [kafka|registry] [-f]" ;;
        esac
    done
    if (( ${#files[@]} == 0 )); then
        for arg in "${SERVICES[@]}"; do files+=("$LOG_DIR/$arg.log"); done
    fi
    for arg in "${files[@]}"; do [[ -f "$arg" ]] || die "no log yet: $arg"; done
    exec tail -n "${STREAMFLOW_STACK_LOG_LINES:-200}" "${follow[@]}" "${files[@]}"
}

cmd_env() {
    [[ -f "$ENV_FILE" ]] || die "the stack is not up (no $ENV_FILE); run: $0 up"
    sed 's/^/export /' "$ENV_FILE"
}

usage() {
    sed -n '2,19p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

main() {
    local cmd="${1:-}"
    [[ $# -gt 0 ]] && shift
    case "$cmd" in
        up|start) cmd_up "$@" ;;
        down|stop) cmd_down "$@" ;;
        restart) cmd_down && cmd_up "$@" ;;
        wipe) cmd_wipe "$@" ;;
        status) cmd_status "$@" ;;
        logs) cmd_logs "$@" ;;
        env) cmd_env "$@" ;;
        -h|--help|help) usage ;;
        *) usage >&2; exit 2 ;;
    esac
}

main "${ARGS[@]}"
