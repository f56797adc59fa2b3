package io.streamlake.serving;

import org.apache.spark.sql.SparkSessionExtensions;
import scala.runtime.AbstractFunction1;
import scala.runtime.BoxedUnit;

/**
 * Spark session extension that makes SQL served to analysts read-only: it installs {@link ReadOnlyGuard}
 * as an analysis check rule, so a refused statement fails before anything runs.
 * Listed in spark.sql.extensions (after Delta's) by the SQL server only.
 */
public final class ReadOnlyExtension extends AbstractFunction1<SparkSessionExtensions, BoxedUnit> {
    @Override
    public BoxedUnit apply(SparkSessionExtensions extensions) {
        extensions.injectCheckRule(new AbstractFunction1<>() {
            @Override
            public ReadOnlyGuard apply(org.apache.spark.sql.SparkSession session) {
                return new ReadOnlyGuard(session);
            }
        });
        return BoxedUnit.UNIT;
    }
}
