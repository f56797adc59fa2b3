package io.streamlake.serving;

/** A statement the read-only guard refused; its message is what the SQL client shows. */
public final class ReadOnlyViolation extends RuntimeException {
    public ReadOnlyViolation(String message) {
        super(message);
    }
}
