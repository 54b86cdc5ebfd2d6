#!/usr/bin/env bash
# Writes server.properties from single-node defaults and KAFKA_* variables, formats the storage
# once (KRaft), then runs the broker in the foreground (as PID 1's exec).
set -euo pipefail

CONFIG="${STREAMFLOW_BROKER_CONFIG_DIR:-/var/lib/kafka/config}"
declare -A props=(
    [process.roles]=broker,controller
    [node.id]=1
    [listeners]=PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093
    [advertised.listeners]=PLAINTEXT://127.0.0.1:9092
    [controller.listener.names]=CONTROLLER
    [inter.broker.listener.name]=PLAINTEXT
    [listener.security.protocol.map]=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
    [log.dirs]=/var/lib/kafka/data
    [num.partitions]=1
    [default.replication.factor]=1
    [min.insync.replicas]=1
    [offsets.topic.replication.factor]=1
    [offsets.topic.num.partitions]=1
    [transaction.state.log.replication.factor]=1
    [transaction.state.log.min.isr]=1
    [transaction.state.log.num.partitions]=1
    [share.coordinator.state.topic.replication.factor]=1
    [share.coordinator.state.topic.min.isr]=1
    [group.initial.rebalance.delay.ms]=0
    [auto.create.topics.enable]=false
    [log.retention.ms]=-1
    [num.network.threads]=2
    [num.io.threads]=4
)
for var in $(compgen -e); do
    case "$var" in
        KAFKA_HEAP_OPTS|KAFKA_JVM_OPTS|KAFKA_LOG_LEVEL|KAFKA_VERSION) continue ;;
        KAFKA_*) ;;
        *) continue ;;
    esac
    name="${var#KAFKA_}"
    name="${name//___/-}"
    name="${name//__/$'\x01'}"
    name="${name//_/.}"
    name="${name//$'\x01'/_}"
    props["${name,,}"]="${!var}"
done
# a static voter list and a dynamic quorum exclude each other
if [[ -z "${props[controller.quorum.voters]:-}" && -z "${props[controller.quorum.bootstrap.servers]:-}" ]]; then
    controller="${props[listeners]##*CONTROLLER://}"
    props[controller.quorum.bootstrap.servers]="${controller%%,*}"
fi
{
    printf '# written by /opt/kafka/entrypoint.sh\n'
    for key in "${!props[@]}"; do printf '%s=%s\n' "$key" "${props[$key]}"; done | sort
} >"$CONFIG/server.properties"
cat >"$CONFIG/log4j2.properties" <<LOG
status = warn
appender.out.type = Console
appender.out.name = OUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = ${KAFKA_LOG_LEVEL:-WARN}
rootLogger.appenderRef.out.ref = OUT
logger.server.name = kafka.server.KafkaRaftServer
logger.server.level = INFO
logger.broker.name = kafka.server.BrokerServer
logger.broker.level = INFO
LOG

read -r -a heap <<<"${KAFKA_HEAP_OPTS:--Xms128m -Xmx512m}"
read -r -a extra <<<"${KAFKA_JVM_OPTS:-}"
common=(-Djava.awt.headless=true "-Dlog4j2.configurationFile=$CONFIG/log4j2.properties"
        -cp '/opt/kafka/libs/*')
if [[ ! -f "${props[log.dirs]%%,*}/meta.properties" ]]; then
    cluster_id="${CLUSTER_ID:-$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')}"
    format=(format -t "$cluster_id" -c "$CONFIG/server.properties" --ignore-formatted)
    [[ -n "${props[controller.quorum.voters]:-}" ]] || format+=(--standalone)
    java -XX:TieredStopAtLevel=1 -XX:+UseSerialGC "${common[@]}" kafka.tools.StorageTool "${format[@]}"
fi
exec java "${heap[@]}" -XX:+UseG1GC -XX:MaxGCPauseMillis=20 "${extra[@]}" "${common[@]}" \
    kafka.Kafka "$CONFIG/server.properties"
