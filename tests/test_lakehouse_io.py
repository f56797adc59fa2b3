"""What the jobs say when a write fails: the line of an error that names the cause."""

from __future__ import annotations

from jobs.lakehouse_io import error_headline


def test_a_jvm_error_is_named_by_its_java_exception_not_by_the_py4j_call() -> None:
    # str() of a Py4JJavaError: which call failed, then the Java exception and its stack.
    error = RuntimeError(
        "An error occurred while calling o1220.save.\n"
        ": java.nio.file.AccessDeniedException: /lake/bronze/orders/_delta_log/00000000000000000003.json\n"
        "\tat java.base/sun.nio.fs.UnixException.translateToIOException(UnixException.java:90)\n"
    )
    assert error_headline(error) == "java.nio.file.AccessDeniedException: /lake/bronze/orders/_delta_log/00000000000000000003.json"


def test_a_python_error_raised_inside_spark_is_named_by_its_last_exception() -> None:
    error = RuntimeError(
        "[FOREACH_BATCH_USER_FUNCTION_ERROR] An error occurred in the user provided function in foreach batch sink.\n"
        "Traceback (most recent call last):\n"
        '  File "jobs/lakehouse_io.py", line 88, in with_retries\n'
        "    return action()\n"
        "ValueError: first\n"
        "\n"
        "Traceback (most recent call last):\n"
        '  File "jobs/bronze_stream.py", line 86, in __call__\n'
        "jobs.lakehouse_io.StoreUnavailableError: Bronze Delta write failed 5 times, giving up\n"
    )
    assert error_headline(error) == "jobs.lakehouse_io.StoreUnavailableError: Bronze Delta write failed 5 times, giving up"


def test_any_other_error_is_named_by_its_first_line() -> None:
    assert error_headline(ValueError("\nbroker down\nmore")) == "broker down"
    assert error_headline(ValueError("")) == "ValueError"
