"""Which lakehouse folders become which tables: the pure registration plan."""

from jobs.serving_catalog import SERVED_LAYERS, TableFolder, plan_registration

ROOT = "file:/lake"
DATABASES = [f"CREATE DATABASE IF NOT EXISTS {layer}" for layer in SERVED_LAYERS]


def folder(layer: str, name: str, root: str = ROOT) -> TableFolder:
    return TableFolder(layer, name, f"{root}/{layer}/{name}")


def test_new_folders_are_created_as_external_delta_tables_in_their_layer():
    plan = plan_registration([folder("gold", "revenue_daily"), folder("silver", "orders_current")], {})
    assert plan.statements == [
        *DATABASES,
        "CREATE TABLE IF NOT EXISTS gold.revenue_daily USING DELTA LOCATION 'file:/lake/gold/revenue_daily'",
        "CREATE TABLE IF NOT EXISTS silver.orders_current USING DELTA LOCATION 'file:/lake/silver/orders_current'",
    ]
    assert plan.created == ["gold.revenue_daily", "silver.orders_current"]


def test_a_table_already_at_its_location_is_left_alone():
    plan = plan_registration([folder("bronze", "orders")], {"bronze.orders": "file:/lake/bronze/orders/"})
    assert (plan.statements, plan.unchanged, plan.created) == (DATABASES, ["bronze.orders"], [])


def test_a_moved_lakehouse_root_repoints_the_registration():
    plan = plan_registration([folder("gold", "revenue_daily", "gs://b/lake")], {"gold.revenue_daily": "file:/lake/gold/revenue_daily"})
    assert plan.statements[len(DATABASES):] == [
        "DROP TABLE IF EXISTS gold.revenue_daily",
        "CREATE TABLE IF NOT EXISTS gold.revenue_daily USING DELTA LOCATION 'gs://b/lake/gold/revenue_daily'",
    ]
    assert plan.repointed == ["gold.revenue_daily"]


def test_internal_layers_and_names_that_are_not_identifiers_are_skipped():
    plan = plan_registration([folder("_ops", "batch_runs"), folder("gold", "tmp-copy"), folder("realtime", "x'; DROP")], {})
    assert plan.statements == DATABASES
    assert plan.skipped == ["_ops.batch_runs", "gold.tmp-copy", "realtime.x'; DROP"]


def test_a_quote_in_a_location_is_escaped():
    plan = plan_registration([TableFolder("gold", "t", "file:/la'ke/gold/t")], {})
    assert plan.statements[-1] == "CREATE TABLE IF NOT EXISTS gold.t USING DELTA LOCATION 'file:/la\\'ke/gold/t'"
