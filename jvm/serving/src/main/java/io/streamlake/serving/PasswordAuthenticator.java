package io.streamlake.serving;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.GeneralSecurityException;
import java.security.MessageDigest;
import java.util.HexFormat;
import java.util.List;

import javax.crypto.SecretKeyFactory;
import javax.crypto.spec.PBEKeySpec;
import javax.security.sasl.AuthenticationException;

import org.apache.hive.service.auth.PasswdAuthenticationProvider;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The Thrift server's CUSTOM authentication: users and PBKDF2-SHA256 password hashes from a file
 * whose path is the JVM system property {@value #FILE_PROPERTY} (set by the server's driver from
 * settings). One line per user: {@code user:pbkdf2_sha256$<iterations>$<salt hex>$<hash hex>}, as
 * {@code streamlake serve-user} writes it (streamlake/serve_users.py, with the same bounds); blank
 * lines and lines starting with # are ignored, the first line of a user counts. The file is read at
 * each login, so users can be added or removed without a restart.
 *
 * <p>A login is refused, never let through, when the file cannot be read or the user's line is
 * malformed; the server's log then names the file and the line. The client only learns that the
 * login failed: Hive's PLAIN server replaces every provider message with "Error validating the login".
 */
public final class PasswordAuthenticator implements PasswdAuthenticationProvider {
    public static final String FILE_PROPERTY = "streamlake.serve.passwordFile";
    static final String SCHEME = "pbkdf2_sha256";
    static final int DEFAULT_ITERATIONS = 600_000;
    // Fewer is a weak hash; more lets one line stall every login of that user.
    static final int MIN_ITERATIONS = 100_000;
    static final int MAX_ITERATIONS = 10_000_000;
    static final int MIN_SALT_BYTES = 16;
    static final int HASH_BYTES = 32;

    private static final Logger LOG = LoggerFactory.getLogger(PasswordAuthenticator.class);
    // Hashed for an unknown user, so that a refusal takes as long whether the user exists or not.
    private static final Entry UNKNOWN_USER = new Entry(DEFAULT_ITERATIONS, new byte[MIN_SALT_BYTES], new byte[HASH_BYTES]);

    @Override
    public void Authenticate(String plainUser, String plainPassword) throws AuthenticationException {
        String user = utf8(plainUser);
        String password = utf8(plainPassword);
        Path file = passwordFile();
        List<String> lines;
        try {
            lines = Files.readAllLines(file, StandardCharsets.UTF_8);
        } catch (IOException e) {
            LOG.error("login refused for user {}: cannot read the password file {} ({}: {})",
                printable(user), file, e.getClass().getSimpleName(), e.getMessage());
            throw refused(user);
        }
        String given = password == null ? "" : password;
        for (int i = 0; i < lines.size(); i++) {
            String entry = lines.get(i).strip();
            if (entry.isEmpty() || entry.startsWith("#")) {
                continue;
            }
            int colon = entry.indexOf(':');
            if (colon < 0) {
                LOG.warn("password file {} line {}: not user:{}$..., ignored", file, i + 1, SCHEME);
                continue;
            }
            if (!entry.substring(0, colon).equals(user)) {
                continue;
            }
            Entry stored;
            try {
                stored = Entry.parse(entry.substring(colon + 1));
            } catch (IllegalArgumentException e) {
                LOG.warn("login refused for user {}: password file {} line {} is malformed ({}); "
                    + "write it again with `streamlake serve-user`", printable(user), file, i + 1, e.getMessage());
                throw refused(user);
            }
            if (stored.matches(given)) {
                LOG.info("login accepted for user {}", printable(user));
                return;
            }
            LOG.warn("login refused for user {}: wrong password", printable(user));
            throw refused(user);
        }
        UNKNOWN_USER.matches(given);
        LOG.warn("login refused for user {}: not in the password file {}", printable(user), file);
        throw refused(user);
    }

    /**
     * Hive's PLAIN server turns each byte of the client's UTF-8 into a char, sign-extended ("é", bytes
     * C3 A9, arrives as U+FFC3 U+FFA9); undone here so that a non-ASCII user or password matches the
     * file. A string that is not such a byte string (ASCII only, or from another transport) is kept.
     */
    static String utf8(String received) {
        if (received == null) {
            return null;
        }
        byte[] bytes = new byte[received.length()];
        boolean widened = false;
        for (int i = 0; i < bytes.length; i++) {
            char c = received.charAt(i);
            if (c >= 0xFF80) {
                widened = true;
            } else if (c >= 0x80) {
                return received;
            }
            bytes[i] = (byte) c;
        }
        if (!widened) {
            return received;
        }
        try {
            return StandardCharsets.UTF_8.newDecoder().decode(ByteBuffer.wrap(bytes)).toString();
        } catch (CharacterCodingException e) {
            return received;
        }
    }

    private static Path passwordFile() throws AuthenticationException {
        String file = System.getProperty(FILE_PROPERTY);
        if (file == null || file.isBlank()) {
            LOG.error("login refused: no password file configured (system property {})", FILE_PROPERTY);
            throw new AuthenticationException("password authentication: no password file configured");
        }
        return Path.of(file);
    }

    // One message for an unknown user, a wrong password and a broken line: a client learns nothing about which.
    private static AuthenticationException refused(String user) {
        return new AuthenticationException("invalid user or password for user " + printable(user));
    }

    // A client chooses the user name; control characters would let it forge log lines.
    private static String printable(String user) {
        return user == null ? "<none>" : user.replaceAll("\\p{Cntrl}", "?");
    }

    /** One user's {@code pbkdf2_sha256$<iterations>$<salt hex>$<hash hex>}. */
    private record Entry(int iterations, byte[] salt, byte[] hash) {
        static Entry parse(String stored) {
            String[] parts = stored.split("\\$", -1);
            if (parts.length != 4 || !parts[0].equals(SCHEME)) {
                throw new IllegalArgumentException("not " + SCHEME + "$<iterations>$<salt hex>$<hash hex>");
            }
            int iterations;
            try {
                iterations = Integer.parseInt(parts[1]);
            } catch (NumberFormatException e) {
                throw new IllegalArgumentException("iterations are not a number");
            }
            if (iterations < MIN_ITERATIONS || iterations > MAX_ITERATIONS) {
                throw new IllegalArgumentException(
                    "iterations " + iterations + " outside " + MIN_ITERATIONS + ".." + MAX_ITERATIONS);
            }
            byte[] salt = hex(parts[2], "salt");
            byte[] hash = hex(parts[3], "hash");
            if (salt.length < MIN_SALT_BYTES) {
                throw new IllegalArgumentException("a salt of " + salt.length + " bytes, fewer than " + MIN_SALT_BYTES);
            }
            if (hash.length != HASH_BYTES) {
                throw new IllegalArgumentException("a hash of " + hash.length + " bytes, not " + HASH_BYTES);
            }
            return new Entry(iterations, salt, hash);
        }

        private static byte[] hex(String text, String what) {
            try {
                return HexFormat.of().parseHex(text);
            } catch (IllegalArgumentException e) {
                throw new IllegalArgumentException("the " + what + " is not hex");
            }
        }

        /** PBKDF2 of the password's UTF-8 bytes (how the JDK encodes a PBEKeySpec's chars), compared in constant time. */
        boolean matches(String password) throws AuthenticationException {
            PBEKeySpec spec = new PBEKeySpec(password.toCharArray(), salt, iterations, HASH_BYTES * 8);
            try {
                byte[] actual = SecretKeyFactory.getInstance("PBKDF2WithHmacSHA256").generateSecret(spec).getEncoded();
                return MessageDigest.isEqual(hash, actual);
            } catch (GeneralSecurityException e) {
                LOG.error("login refused: PBKDF2WithHmacSHA256 failed in this JVM", e);
                throw new AuthenticationException("password authentication: PBKDF2WithHmacSHA256 failed", e);
            } finally {
                spec.clearPassword();
            }
        }
    }
}
