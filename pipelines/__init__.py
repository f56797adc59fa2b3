"""Pure DataFrame -> DataFrame transformations. No SparkSession, no reads or writes, no config."""
