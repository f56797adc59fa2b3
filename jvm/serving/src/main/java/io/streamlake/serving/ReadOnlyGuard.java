package io.streamlake.serving;

import java.util.Locale;
import java.util.Set;
import java.util.regex.Pattern;

import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.catalyst.expressions.CallMethodViaReflection;
import org.apache.spark.sql.catalyst.expressions.Expression;
import org.apache.spark.sql.catalyst.expressions.SubqueryExpression;
import org.apache.spark.sql.catalyst.plans.logical.Command;
import org.apache.spark.sql.catalyst.plans.logical.LogicalPlan;
import org.apache.spark.sql.execution.command.ResetCommand;
import org.apache.spark.sql.execution.command.SetCommand;
import scala.Option;
import scala.Tuple2;
import scala.collection.Iterator;
import scala.runtime.AbstractFunction1;
import scala.runtime.BoxedUnit;

/**
 * Refuses, while {@value #READ_ONLY_KEY} is true in the session, every analysed plan that writes or
 * changes the catalog: any {@link Command} but reads (SHOW, DESCRIBE, EXPLAIN, USE, SET of other keys),
 * any node named like a write even if it is not a Command, and reflect()/java_method(), which would run
 * arbitrary JVM code. A check rule runs before a command executes, so nothing has happened when it throws.
 */
public final class ReadOnlyGuard extends AbstractFunction1<LogicalPlan, BoxedUnit> {
    public static final String READ_ONLY_KEY = "spark.streamlake.serve.readOnly";

    // Commands that only read the catalog or the session; matched on the class's simple name, so the
    // v1 and v2 variants (ShowTables, ShowTablesCommand, ...) are both covered.
    private static final Pattern READ_COMMAND = Pattern.compile(
        "^(Show|Describe|Explain|List).*|^(SetNamespaceCommand|SetCatalogAndNamespace|SetCatalogCommand)$");
    // Write and DDL nodes whatever their trait, e.g. Delta's own MERGE/UPDATE/DELETE plans.
    private static final Pattern WRITE_NODE = Pattern.compile(
        ".*(Insert|Merge|Delete|Update|Append|Overwrite|Write|Create|Drop|Alter|Truncate|Replace|Rename|Vacuum"
            + "|Optimize|Restore|Clone|Repair|Refresh|Cache|Load|AddJar|AddFile|AddArchive).*");
    private static final Set<String> GUARDED_KEYS = Set.of(READ_ONLY_KEY.toLowerCase(Locale.ROOT));

    private final SparkSession session;

    public ReadOnlyGuard(SparkSession session) {
        this.session = session;
    }

    @Override
    public BoxedUnit apply(LogicalPlan plan) {
        if (Boolean.parseBoolean(session.conf().get(READ_ONLY_KEY, "false"))) {
            check(plan);
        }
        return BoxedUnit.UNIT;
    }

    private static void check(LogicalPlan node) {
        String name = node.getClass().getSimpleName();
        if (node instanceof SetCommand set) {
            checkSet(set);
        } else if (node instanceof ResetCommand reset) {
            Option<String> key = reset.config();
            if (key.isEmpty() || isGuarded(key.get())) {
                throw refused("RESET of " + (key.isEmpty() ? "every setting" : READ_ONLY_KEY));
            }
        } else if (node instanceof Command && !READ_COMMAND.matcher(name).matches()) {
            throw refused(describe(name));
        } else if (WRITE_NODE.matcher(name).matches()) {
            throw refused(describe(name));
        }
        Iterator<Expression> expressions = node.expressions().iterator();
        while (expressions.hasNext()) {
            checkExpression(expressions.next());
        }
        Iterator<LogicalPlan> children = node.children().iterator();
        while (children.hasNext()) {
            check(children.next());
        }
    }

    private static void checkSet(SetCommand set) {
        Option<Tuple2<String, Option<String>>> kv = set.kv();
        // `SET` and `SET key` only read; `SET key=value` of the guard's own key would switch it off.
        if (kv.isDefined() && kv.get()._2().isDefined() && isGuarded(kv.get()._1())) {
            throw refused("SET of " + READ_ONLY_KEY);
        }
    }

    private static void checkExpression(Expression expression) {
        if (expression instanceof CallMethodViaReflection) {
            throw refused("reflect()/java_method()");
        }
        if (expression instanceof SubqueryExpression subquery) {
            check(subquery.plan());
        }
        Iterator<Expression> children = expression.children().iterator();
        while (children.hasNext()) {
            checkExpression(children.next());
        }
    }

    private static boolean isGuarded(String key) {
        return GUARDED_KEYS.contains(key.trim().toLowerCase(Locale.ROOT));
    }

    /** `DropTableCommand` -> `DROP TABLE`: the statement an analyst typed, not Spark's class name. */
    private static String describe(String planName) {
        String words = planName.replaceAll("(Command|Exec|Statement)$", "")
            .replaceAll("^Delta", "")
            .replaceAll("([a-z])([A-Z])", "$1 $2");
        words = words.toUpperCase(Locale.ROOT);
        // Spark's v2 write plans are named after what they do, not the statement that asked for it.
        return switch (words) {
            case "APPEND DATA", "INSERT INTO HADOOP FS RELATION", "INSERT INTO DATA SOURCE" -> "INSERT";
            case "OVERWRITE BY EXPRESSION", "OVERWRITE PARTITIONS DYNAMIC" -> "INSERT OVERWRITE";
            default -> words;
        };
    }

    private static ReadOnlyViolation refused(String what) {
        return new ReadOnlyViolation("StreamLake serving is read-only: " + what + " is refused");
    }
}
