/*
 * The Kafka Streams side of streamflow's conformance suite (tests/conformance/).
 *
 * Each scenario is a named Kafka Streams topology; its inputs come from the JSON file given as
 * the first argument (written by tests/conformance/kstreams.py from the same seeded generators
 * the Python side uses). Every scenario runs in Kafka Streams' own TopologyTestDriver, records
 * piped in file order; the records of its output topics are printed to stdout as JSON lines:
 *
 *   {"scenario": "...", "topic": "out", "key": "a", "value": 3, "timestamp": 1200}
 *
 * A scenario that throws prints {"scenario": "...", "error": "..."} and the others still run.
 * The first line lists the scenarios defined here: {"defined": ["...", ...]}.
 *
 * Input file:
 *   {"scenarios": [{"name": "...", "topics": {"in": "long"}, "outputs": {"out": "string"},
 *                   "records": [{"topic": "in", "key": "a", "value": 1, "timestamp": 0}]}]}
 * Value types are "long" (Serdes.Long) or "string" (Serdes.String); keys are strings.
 *
 * Windowed results are re-keyed "key@start/end" (Window.start() and Window.end() as Kafka Streams
 * reports them) so both sides compare plain strings. Caching is off (statestore.cache.max.bytes=0)
 * so every update is forwarded, and emit-on-window-close is not throttled by the wall clock.
 *
 * To add a scenario: add an entry to SCENARIOS with the name the Python side uses
 * (tests/conformance/scenarios.py).
 */

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;

import org.apache.kafka.common.serialization.Serde;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.streams.KeyValue;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.TestInputTopic;
import org.apache.kafka.streams.TestOutputTopic;
import org.apache.kafka.streams.test.TestRecord;
import org.apache.kafka.streams.Topology;
import org.apache.kafka.streams.TopologyTestDriver;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.EmitStrategy;
import org.apache.kafka.streams.kstream.GlobalKTable;
import org.apache.kafka.streams.kstream.Grouped;
import org.apache.kafka.streams.kstream.JoinWindows;
import org.apache.kafka.streams.kstream.KStream;
import org.apache.kafka.streams.kstream.KTable;
import org.apache.kafka.streams.kstream.Materialized;
import org.apache.kafka.streams.kstream.Produced;
import org.apache.kafka.streams.kstream.SessionWindows;
import org.apache.kafka.streams.kstream.SlidingWindows;
import org.apache.kafka.streams.kstream.StreamJoined;
import org.apache.kafka.streams.kstream.Suppressed;
import org.apache.kafka.streams.kstream.TimeWindows;
import org.apache.kafka.streams.kstream.Windowed;

import java.io.File;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.function.Consumer;

public final class Scenarios {
    private static final Serde<String> S = Serdes.String();
    private static final Serde<Long> L = Serdes.Long();
    private static final Consumed<String, Long> IN_LONG = Consumed.with(S, L);
    private static final Grouped<String, Long> GROUPED = Grouped.with(S, L);

    private static final Map<String, Consumer<StreamsBuilder>> SCENARIOS = new LinkedHashMap<>();

    private static Duration ms(final long n) {
        return Duration.ofMillis(n);
    }

    private static String windowed(final Windowed<String> w) {
        return w.key() + "@" + w.window().start() + "/" + w.window().end();
    }

    private static <V> void toOut(final KTable<Windowed<String>, V> table, final Serde<V> serde) {
        table.toStream().map((w, v) -> KeyValue.pair(windowed(w), v)).to("out", Produced.with(S, serde));
    }

    private static <V> void toOutFinal(final KTable<Windowed<String>, V> table, final Serde<V> serde) {
        toOut(table.suppress(Suppressed.untilWindowCloses(Suppressed.BufferConfig.unbounded())), serde);
    }

    private static KStream<String, Long> in(final StreamsBuilder b) {
        return b.stream("in", IN_LONG);
    }

    static {
        // ---- stateless ------------------------------------------------------------------
        SCENARIOS.put("stateless-filter-map-flat-map", b -> in(b)
            .filter((k, v) -> v % 3 != 0)
            .mapValues(v -> v * 10)
            .flatMapValues(v -> List.of(v, v + 1))
            .map((k, v) -> KeyValue.pair(k + "-" + (v % 2), v))
            .to("out", Produced.with(S, L)));

        // ---- non-windowed aggregations ------------------------------------------------------
        SCENARIOS.put("count-by-key", b -> in(b).groupByKey(GROUPED)
            .count(Materialized.with(S, L)).toStream().to("out", Produced.with(S, L)));
        SCENARIOS.put("reduce-sum-by-key", b -> in(b).groupByKey(GROUPED)
            .reduce(Long::sum, Materialized.with(S, L)).toStream().to("out", Produced.with(S, L)));
        SCENARIOS.put("aggregate-concat-by-key", b -> in(b).groupByKey(GROUPED)
            .aggregate(() -> "", (k, v, agg) -> agg + v + ";", Materialized.with(S, S))
            .toStream().to("out", Produced.with(S, S)));
        SCENARIOS.put("group-by-repartition-count", b -> in(b)
            .groupBy((k, v) -> "g" + (v % 4), GROUPED)
            .count(Materialized.with(S, L)).toStream().to("out", Produced.with(S, L)));

        // ---- tumbling and hopping windows -------------------------------------------------
        SCENARIOS.put("tumbling-count-updates", b -> toOut(in(b).groupByKey(GROUPED)
            .windowedBy(TimeWindows.ofSizeAndGrace(ms(1000), ms(200)))
            .count(Materialized.with(S, L)), L));
        SCENARIOS.put("tumbling-count-suppressed", b -> toOutFinal(in(b).groupByKey(GROUPED)
            .windowedBy(TimeWindows.ofSizeAndGrace(ms(1000), ms(200)))
            .count(Materialized.with(S, L)), L));
        SCENARIOS.put("tumbling-count-emit-on-close", b -> toOut(in(b).groupByKey(GROUPED)
            .windowedBy(TimeWindows.ofSizeAndGrace(ms(1000), ms(200)))
            .emitStrategy(EmitStrategy.onWindowClose())
            .count(Materialized.with(S, L)), L));
        SCENARIOS.put("hopping-aggregate-updates", b -> toOut(in(b).groupByKey(GROUPED)
            .windowedBy(TimeWindows.ofSizeAndGrace(ms(1000), ms(300)).advanceBy(ms(250)))
            .aggregate(() -> "", (k, v, agg) -> agg + v + ";", Materialized.with(S, S)), S));
        SCENARIOS.put("hopping-reduce-suppressed", b -> toOutFinal(in(b).groupByKey(GROUPED)
            .windowedBy(TimeWindows.ofSizeAndGrace(ms(1000), ms(300)).advanceBy(ms(250)))
            .reduce(Long::sum, Materialized.with(S, L)), L));

        // ---- sliding windows ---------------------------------------------------------------
        SCENARIOS.put("sliding-count-updates", b -> toOut(in(b).groupByKey(GROUPED)
            .windowedBy(SlidingWindows.ofTimeDifferenceAndGrace(ms(500), ms(200)))
            .count(Materialized.with(S, L)), L));
        SCENARIOS.put("sliding-aggregate-suppressed", b -> toOutFinal(in(b).groupByKey(GROUPED)
            .windowedBy(SlidingWindows.ofTimeDifferenceAndGrace(ms(500), ms(200)))
            .aggregate(() -> "", (k, v, agg) -> agg + v + ";", Materialized.with(S, S)), S));
        SCENARIOS.put("sliding-count-early", b -> toOut(in(b).groupByKey(GROUPED)
            .windowedBy(SlidingWindows.ofTimeDifferenceAndGrace(ms(500), ms(100)))
            .count(Materialized.with(S, L)), L));

        // ---- session windows ---------------------------------------------------------------
        SCENARIOS.put("session-count-updates", b -> toOut(in(b).groupByKey(GROUPED)
            .windowedBy(SessionWindows.ofInactivityGapAndGrace(ms(300), ms(200)))
            .count(Materialized.with(S, L)), L));
        SCENARIOS.put("session-reduce-suppressed", b -> toOutFinal(in(b).groupByKey(GROUPED)
            .windowedBy(SessionWindows.ofInactivityGapAndGrace(ms(300), ms(200)))
            .reduce(Long::sum, Materialized.with(S, L)), L));

        // ---- stream-table joins ------------------------------------------------------------
        SCENARIOS.put("stream-table-join", b -> {
            final KTable<String, String> table = b.table("tbl", Consumed.with(S, S), Materialized.with(S, S));
            in(b).join(table, (v, row) -> v + "|" + row).to("out", Produced.with(S, S));
        });
        SCENARIOS.put("stream-table-left-join", b -> {
            final KTable<String, String> table = b.table("tbl", Consumed.with(S, S), Materialized.with(S, S));
            in(b).leftJoin(table, (v, row) -> v + "|" + row).to("out", Produced.with(S, S));
        });

        // ---- pending on the streamflow side (scenarios.PENDING): joins other branches add ----
        // stream-stream joins: "left" and "right" (longs), windows of 300 ms before and after,
        // grace 100 ms; unmatched records of left/outer joins come out once their window closes
        final JoinWindows within = JoinWindows.ofTimeDifferenceAndGrace(ms(300), ms(100));
        final StreamJoined<String, Long, Long> longs = StreamJoined.with(S, L, L);
        SCENARIOS.put("stream-stream-join", b -> b.stream("left", IN_LONG)
            .join(b.stream("right", IN_LONG), (l, r) -> l + "|" + r, within, longs)
            .to("out", Produced.with(S, S)));
        SCENARIOS.put("stream-stream-left-join", b -> b.stream("left", IN_LONG)
            .leftJoin(b.stream("right", IN_LONG), (l, r) -> l + "|" + r, within, longs)
            .to("out", Produced.with(S, S)));
        SCENARIOS.put("stream-stream-outer-join", b -> b.stream("left", IN_LONG)
            .outerJoin(b.stream("right", IN_LONG), (l, r) -> l + "|" + r, within, longs)
            .to("out", Produced.with(S, S)));
        SCENARIOS.put("stream-stream-self-join", b -> {
            final KStream<String, Long> s = b.stream("left", IN_LONG);
            s.join(s, (l, r) -> l + "|" + r, within, longs).to("out", Produced.with(S, S));
        });
        // table-table joins: "left" and "right" tables of strings (with deletes)
        SCENARIOS.put("table-table-join", b -> {
            final KTable<String, String>[] t = tables(b);
            t[0].join(t[1], (l, r) -> l + "|" + r).toStream().to("out", Produced.with(S, S));
        });
        SCENARIOS.put("table-table-left-join", b -> {
            final KTable<String, String>[] t = tables(b);
            t[0].leftJoin(t[1], (l, r) -> l + "|" + r).toStream().to("out", Produced.with(S, S));
        });
        SCENARIOS.put("table-table-outer-join", b -> {
            final KTable<String, String>[] t = tables(b);
            t[0].outerJoin(t[1], (l, r) -> l + "|" + r).toStream().to("out", Produced.with(S, S));
        });
        // foreign-key join: "left" rows are "<right key>:<n>", joined to the "right" row they name
        SCENARIOS.put("foreign-key-join", b -> {
            final KTable<String, String>[] t = tables(b);
            t[0].join(t[1], v -> v.split(":")[0], (l, r) -> l + "|" + r)
                .toStream().to("out", Produced.with(S, S));
        });
        SCENARIOS.put("foreign-key-left-join", b -> {
            final KTable<String, String>[] t = tables(b);
            t[0].leftJoin(t[1], v -> v.split(":")[0], (l, r) -> l + "|" + r)
                .toStream().to("out", Produced.with(S, S));
        });
        // global table: "in" (longs) joined to the "glob" row named "k" + (value % 5)
        SCENARIOS.put("global-table-join", b -> {
            final GlobalKTable<String, String> glob = b.globalTable("glob", Consumed.with(S, S));
            in(b).join(glob, (k, v) -> "k" + (v % 5), (v, row) -> v + "|" + row)
                .to("out", Produced.with(S, S));
        });
        SCENARIOS.put("global-table-left-join", b -> {
            final GlobalKTable<String, String> glob = b.globalTable("glob", Consumed.with(S, S));
            in(b).leftJoin(glob, (k, v) -> "k" + (v % 5), (v, row) -> v + "|" + row)
                .to("out", Produced.with(S, S));
        });
    }

    /** The tables "left" and "right" (string values), materialized. */
    @SuppressWarnings("unchecked")
    private static KTable<String, String>[] tables(final StreamsBuilder b) {
        return new KTable[] {
            b.table("left", Consumed.with(S, S), Materialized.with(S, S)),
            b.table("right", Consumed.with(S, S), Materialized.with(S, S)),
        };
    }

    private static Serde<?> serde(final String type) {
        switch (type) {
            case "long": return L;
            case "string": return S;
            default: throw new IllegalArgumentException("unknown value type " + type);
        }
    }

    @SuppressWarnings("unchecked")
    private static Object value(final JsonNode node, final String type) {
        if (node == null || node.isNull()) {
            return null;
        }
        return "long".equals(type) ? (Object) node.asLong() : node.asText();
    }

    @SuppressWarnings({"unchecked", "rawtypes"})
    private static List<ObjectNode> run(final ObjectMapper json, final JsonNode scenario) {
        final String name = scenario.get("name").asText();
        final Consumer<StreamsBuilder> build = SCENARIOS.get(name);
        if (build == null) {
            throw new IllegalArgumentException("no Kafka Streams scenario named " + name);
        }
        final StreamsBuilder builder = new StreamsBuilder();
        build.accept(builder);
        final Topology topology = builder.build();
        final Properties props = new Properties();
        props.put(StreamsConfig.APPLICATION_ID_CONFIG, "conformance-" + name);
        props.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, "unused:9092");
        props.put(StreamsConfig.STATESTORE_CACHE_MAX_BYTES_CONFIG, 0);
        props.put(StreamsConfig.InternalConfig.EMIT_INTERVAL_MS_KSTREAMS_WINDOWED_AGGREGATION, 0L);
        final List<ObjectNode> out = new ArrayList<>();
        try (TopologyTestDriver driver = new TopologyTestDriver(topology, props, Instant.ofEpochMilli(0))) {
            final Map<String, TestInputTopic> inputs = new LinkedHashMap<>();
            final Map<String, String> inTypes = new LinkedHashMap<>();
            for (Iterator<Map.Entry<String, JsonNode>> it = scenario.get("topics").properties().iterator(); it.hasNext(); ) {
                final Map.Entry<String, JsonNode> e = it.next();
                inTypes.put(e.getKey(), e.getValue().asText());
                inputs.put(e.getKey(), driver.createInputTopic(e.getKey(), S.serializer(),
                    (org.apache.kafka.common.serialization.Serializer) serde(e.getValue().asText()).serializer()));
            }
            final Map<String, TestOutputTopic> outputs = new LinkedHashMap<>();
            for (Iterator<Map.Entry<String, JsonNode>> it = scenario.get("outputs").properties().iterator(); it.hasNext(); ) {
                final Map.Entry<String, JsonNode> e = it.next();
                outputs.put(e.getKey(), driver.createOutputTopic(e.getKey(), S.deserializer(),
                    serde(e.getValue().asText()).deserializer()));
            }
            for (final JsonNode r : scenario.get("records")) {
                final String topic = r.get("topic").asText();
                final JsonNode k = r.get("key");
                inputs.get(topic).pipeInput(new TestRecord(
                    k == null || k.isNull() ? null : k.asText(),
                    value(r.get("value"), inTypes.get(topic)),
                    Instant.ofEpochMilli(r.get("timestamp").asLong())));
            }
            for (final Map.Entry<String, TestOutputTopic> e : outputs.entrySet()) {
                for (final Object o : e.getValue().readRecordsToList()) {
                    final TestRecord<String, Object> rec = (TestRecord<String, Object>) o;
                    final ObjectNode line = json.createObjectNode();
                    line.put("scenario", name);
                    line.put("topic", e.getKey());
                    line.put("key", rec.key());
                    line.putPOJO("value", rec.value());
                    line.put("timestamp", rec.timestamp());
                    out.add(line);
                }
            }
        }
        return out;
    }

    public static void main(final String[] args) throws Exception {
        final ObjectMapper json = new ObjectMapper();
        final PrintStream stdout = new PrintStream(System.out, false, StandardCharsets.UTF_8);
        final ObjectNode defined = json.createObjectNode();
        defined.putPOJO("defined", new ArrayList<>(SCENARIOS.keySet()));
        stdout.println(json.writeValueAsString(defined));
        final JsonNode doc = json.readTree(new File(args[0]));
        for (final JsonNode scenario : doc.get("scenarios")) {
            List<ObjectNode> lines;
            try {
                lines = run(json, scenario);
            } catch (final RuntimeException e) {
                final ObjectNode err = json.createObjectNode();
                err.put("scenario", scenario.get("name").asText());
                err.put("error", e.toString());
                lines = List.of(err);
            }
            for (final ObjectNode line : lines) {
                stdout.println(json.writeValueAsString(line));
            }
        }
        stdout.flush();
    }
}
