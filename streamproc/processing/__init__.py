"""The processing loop: lanes of leads per partition, committed in Kafka transactions."""
