package io.streamlake.serving;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.spec.KeySpec;
import java.util.HexFormat;
import java.util.List;

import javax.crypto.SecretKeyFactory;
import javax.crypto.spec.PBEKeySpec;
import javax.security.sasl.AuthenticationException;

import org.apache.hive.service.auth.PasswdAuthenticationProvider;

/**
 * The Thrift server's CUSTOM authentication: users and PBKDF2-SHA256 password hashes from a file
 * whose path is the JVM system property {@value #FILE_PROPERTY} (set by the server's driver from
 * settings). One line per user: {@code user:pbkdf2_sha256$<iterations>$<salt hex>$<hash hex>};
 * blank lines and lines starting with # are ignored. The file is read at each login, so users can be
 * added or removed without a restart.
 */
public final class PasswordAuthenticator implements PasswdAuthenticationProvider {
    public static final String FILE_PROPERTY = "streamlake.serve.passwordFile";
    private static final String SCHEME = "pbkdf2_sha256";

    @Override
    public void Authenticate(String user, String password) throws AuthenticationException {
        String file = System.getProperty(FILE_PROPERTY);
        if (file == null || file.isBlank()) {
            throw new AuthenticationException("password authentication: no password file configured (" + FILE_PROPERTY + ")");
        }
        List<String> lines;
        try {
            lines = Files.readAllLines(Path.of(file), StandardCharsets.UTF_8);
        } catch (IOException e) {
            throw new AuthenticationException("password authentication: cannot read the password file " + file, e);
        }
        for (String line : lines) {
            String entry = line.strip();
            int colon = entry.indexOf(':');
            if (entry.isEmpty() || entry.startsWith("#") || colon < 0 || !entry.substring(0, colon).equals(user)) {
                continue;
            }
            if (matches(entry.substring(colon + 1), password == null ? "" : password)) {
                return;
            }
            break;
        }
        // One message for an unknown user and a wrong password: a client learns nothing about which.
        throw new AuthenticationException("invalid user or password for user " + user);
    }

    private static boolean matches(String stored, String password) throws AuthenticationException {
        String[] parts = stored.split("\\$");
        if (parts.length != 4 || !parts[0].equals(SCHEME)) {
            throw new AuthenticationException("password authentication: a password file entry is not " + SCHEME + "$iterations$salt$hash");
        }
        try {
            int iterations = Integer.parseInt(parts[1]);
            byte[] salt = HexFormat.of().parseHex(parts[2]);
            byte[] expected = HexFormat.of().parseHex(parts[3]);
            KeySpec spec = new PBEKeySpec(password.toCharArray(), salt, iterations, expected.length * 8);
            byte[] actual = SecretKeyFactory.getInstance("PBKDF2WithHmacSHA256").generateSecret(spec).getEncoded();
            return MessageDigest.isEqual(expected, actual);
        } catch (IllegalArgumentException | java.security.GeneralSecurityException e) {
            throw new AuthenticationException("password authentication: a password file entry is malformed", e);
        }
    }
}
