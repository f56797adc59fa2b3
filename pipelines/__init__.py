"""Pure DataFrame -> DataFrame transformations. No SparkSession, no reads or writes, no config.

One stated exception: `pipelines.bronze.with_verdict` takes a `divert_invalid` callback, which runs
in Spark's Python workers over the judged Arrow batches. The Bronze job passes one that sends the
invalid records to the DLQ topic (`jobs.bronze_dlq.divert_invalid`), so that Kafka is read once per
batch. The pipeline itself opens no connection and holds no setting: the callback, and everything
it sends, comes from the job.
"""
