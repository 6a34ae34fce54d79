"""The schema registry: its HTTP client, the schemas of the enriched leads, and the codec
that reads and writes leads in the registry's wire format (docs/schema-registry.md).

Why our own small client over httpx rather than confluent-kafka's ``schema_registry``:
streamproc needs four requests of the Confluent-compatible API (a schema by id, the latest
version of a subject, a compatibility check, a registration), asynchronously, on the event
loop, with outages reported as one retriable error that holds the lead. confluent-kafka's
client is synchronous (its async variant is young), and it would bring librdkafka, a second
Kafka client, into a process that speaks Kafka through aiokafka. Avro itself is fastavro,
the library confluent-kafka's own Avro serializer is built on.
"""
