"""The registry of Zoho entities: one row per entity, read by generic code everywhere else.

Adding an entity is one ``EntitySpec`` row (and its typed columns); tables, assets, the sync engine and the
simulator's client-side expectations all derive from this table.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Api = Literal["books", "inventory"]
# How an incremental run narrows its listing (DESIGN §3):
#   modified_since  the list's last_modified_time filter
#   sorted_stop     list sorted by the version field descending, stop at the cursor
#   date_window     re-list the last `window_days` days by document date
#   full_only       small sets, listed whole every time
Strategy = Literal["modified_since", "sorted_stop", "date_window", "full_only"]
ColumnType = Literal["text", "numeric", "int", "bool", "date", "timestamp"]


@dataclass(frozen=True)
class Col:
    """A typed column: `name` in the ERP table, read from the record's `source` field (default: same name)."""

    name: str
    type: ColumnType = "text"
    source: str | None = None

    @property
    def field(self) -> str:
        return self.source or self.name


@dataclass(frozen=True)
class ChildSpec:
    """Rows nested in a record (line items, ...), stored in their own table and replaced with their parent."""

    field: str
    table: str
    id_field: str | None
    columns: tuple[Col, ...]


@dataclass(frozen=True)
class EntitySpec:
    name: str
    api: Api
    path: str
    list_key: str
    get_key: str | None
    id_field: str
    strategy: Strategy
    columns: tuple[Col, ...]
    singular: str = ""  # the webhook/GET wrapper key; defaults to get_key
    list_params: dict[str, str] = field(default_factory=dict)
    # Fields that version a record, first present wins; compared as UTC instants.
    version_fields: tuple[str, ...] = ("last_modified_time", "updated_time", "created_time")
    sort_field: str = "last_modified_time"  # for sorted_stop
    # Full listings page by offset, by name unless told, so a rename between two pages shifts records past
    # a page boundary. Sort where Zoho documents a column: created_time (documents) is never reshuffled by
    # edits; last_modified_time (items, contacts) moves an edited record to the end, where the listing
    # still meets it. Either way a record missing from a listing is tombstoned only once a GET confirms it.
    full_sort: str | None = None
    date_field: str | None = None  # document date: date filters and monthly partitions
    window_days: int = 0  # for date_window
    needs_detail: bool = False  # the list is abridged: children/fields come only with the GET
    children: tuple[ChildSpec, ...] = ()
    status_all: bool = False  # full listings ask filter_by=Status.All so inactive/void/deleted stay
    # Zoho answers the list with response_option=2 (page_context.total): counted in one call. Otherwise the
    # count check lists the ids, and that listing also names the records behind a difference.
    zoho_counts: bool = True

    @property
    def table(self) -> str:
        return f"zoho_{self.name}"

    @property
    def partitioned(self) -> bool:
        return self.date_field is not None

    @property
    def asset_key(self) -> list[str]:
        return ["zoho", self.name]


def _line_items(table: str, quantity_source: str = "quantity") -> ChildSpec:
    return ChildSpec(
        field="line_items",
        table=table,
        id_field="line_item_id",
        columns=(
            Col("item_id"),
            Col("name"),
            Col("sku"),
            Col("description"),
            Col("quantity", "numeric", quantity_source),
            Col("unit"),
            Col("rate", "numeric"),
            Col("discount", "numeric"),
            Col("tax_id"),
            Col("tax_percentage", "numeric"),
            Col("item_total", "numeric"),
            Col("warehouse_id"),
        ),
    )


_CONTACT_COLUMNS = (
    Col("contact_name"),
    Col("company_name"),
    Col("contact_type"),
    Col("status"),
    Col("email"),
    Col("phone"),
    Col("currency_code"),
    Col("outstanding_receivable_amount", "numeric"),
    Col("outstanding_payable_amount", "numeric"),
    Col("created_time", "timestamp"),
)
_CONTACT_PERSONS = ChildSpec(
    field="contact_persons",
    table="zoho_contact_persons",
    id_field="contact_person_id",
    columns=(
        Col("first_name"),
        Col("last_name"),
        Col("email"),
        Col("phone"),
        Col("mobile"),
        Col("is_primary_contact", "bool"),
    ),
)
_DOCUMENT_COLUMNS = (
    Col("date", "date"),
    Col("status"),
    Col("currency_code"),
    Col("exchange_rate", "numeric"),
    Col("total", "numeric"),
    Col("created_time", "timestamp"),
)


def _document(name: str, path: str, singular: str, number: str, party: str, extra: tuple[Col, ...]) -> EntitySpec:
    """A Books document (invoice, sales order, bill, credit note): changed-since filter, monthly partitions by
    document date, line items only on the GET."""
    return EntitySpec(
        name=name,
        api="books",
        path=path,
        list_key=path.strip("/"),
        get_key=singular,
        id_field=f"{singular}_id",
        strategy="modified_since",
        date_field="date",
        full_sort="created_time",
        status_all=True,
        needs_detail=True,
        columns=(Col(number), Col(f"{party}_id"), Col(f"{party}_name"), *extra, *_DOCUMENT_COLUMNS),
        children=(_line_items(f"zoho_{name[:-1]}_line_items"),),
    )


ENTITIES: tuple[EntitySpec, ...] = (
    EntitySpec(
        name="products",
        api="inventory",
        path="/items",
        list_key="items",
        get_key="item",
        id_field="item_id",
        strategy="modified_since",
        full_sort="last_modified_time",
        status_all=True,
        # The item list carries every column the ERP queries; per-warehouse stock is item_stock's job.
        columns=(
            Col("name"),
            Col("sku"),
            Col("status"),
            Col("unit"),
            Col("product_type"),
            Col("rate", "numeric"),
            Col("purchase_rate", "numeric"),
            Col("stock_on_hand", "numeric"),
            Col("available_stock", "numeric"),
            Col("reorder_level", "numeric"),
            Col("tax_id"),
            Col("created_time", "timestamp"),
        ),
    ),
    EntitySpec(
        name="customers",
        api="books",
        path="/contacts",
        list_key="contacts",
        get_key="contact",
        id_field="contact_id",
        list_params={"contact_type": "customer"},
        strategy="sorted_stop",
        full_sort="last_modified_time",
        status_all=True,
        needs_detail=True,
        columns=_CONTACT_COLUMNS,
        children=(_CONTACT_PERSONS,),
    ),
    EntitySpec(
        name="vendors",
        api="books",
        path="/contacts",
        list_key="contacts",
        get_key="contact",
        id_field="contact_id",
        list_params={"contact_type": "vendor"},
        strategy="sorted_stop",
        full_sort="last_modified_time",
        status_all=True,
        needs_detail=True,
        columns=_CONTACT_COLUMNS,
        children=(_CONTACT_PERSONS,),
    ),
    _document(
        "invoices",
        "/invoices",
        "invoice",
        "invoice_number",
        "customer",
        extra=(Col("due_date", "date"), Col("balance", "numeric"), Col("salesperson_id")),
    ),
    _document(
        "sales_orders",
        "/salesorders",
        "salesorder",
        "salesorder_number",
        "customer",
        extra=(Col("shipment_date", "date"), Col("salesperson_id")),
    ),
    EntitySpec(
        name="customer_payments",
        api="books",
        path="/customerpayments",
        list_key="customerpayments",
        get_key="payment",
        id_field="payment_id",
        strategy="date_window",
        window_days=45,
        date_field="date",
        needs_detail=True,
        columns=(
            Col("payment_number"),
            Col("customer_id"),
            Col("customer_name"),
            Col("payment_mode"),
            Col("reference_number"),
            Col("amount", "numeric"),
            Col("bank_charges", "numeric"),
            Col("unused_amount", "numeric"),
            Col("date", "date"),
            Col("status"),
            Col("currency_code"),
            Col("created_time", "timestamp"),
        ),
        children=(
            ChildSpec(
                field="invoices",
                table="zoho_customer_payment_invoices",
                id_field="invoice_payment_id",
                columns=(
                    Col("invoice_id"),
                    Col("invoice_number"),
                    Col("amount_applied", "numeric"),
                ),
            ),
        ),
    ),
    _document(
        "bills", "/bills", "bill", "bill_number", "vendor", extra=(Col("due_date", "date"), Col("balance", "numeric"))
    ),
    _document(
        "credit_notes",
        "/creditnotes",
        "creditnote",
        "creditnote_number",
        "customer",
        extra=(Col("balance", "numeric"),),
    ),
    EntitySpec(
        name="stock_adjustments",
        api="inventory",
        path="/inventoryadjustments",
        list_key="inventory_adjustments",
        get_key="inventory_adjustment",
        id_field="inventory_adjustment_id",
        strategy="sorted_stop",
        needs_detail=True,
        columns=(
            Col("date", "date"),
            Col("reason"),
            Col("reference_number"),
            Col("adjustment_type"),
            Col("status"),
            Col("total", "numeric"),
            Col("created_time", "timestamp"),
        ),
        children=(_line_items("zoho_stock_adjustment_line_items", quantity_source="quantity_adjusted"),),
    ),
    EntitySpec(
        name="price_lists",
        api="inventory",
        path="/pricebooks",
        list_key="pricebooks",
        get_key=None,
        singular="pricebook",
        id_field="pricebook_id",
        strategy="full_only",
        columns=(
            Col("name"),
            Col("status"),
            Col("pricebook_type"),
            Col("currency_code"),
            Col("percentage", "numeric"),
            Col("is_increase", "bool"),
            Col("sales_or_purchase_type"),
        ),
        children=(
            ChildSpec(
                field="pricebook_items",
                table="zoho_price_list_items",
                id_field="pricebook_item_id",
                columns=(Col("item_id"), Col("pricebook_rate", "numeric"), Col("pricebook_discount")),
            ),
        ),
    ),
    EntitySpec(
        name="users",
        api="books",
        path="/users",
        list_key="users",
        get_key="user",
        id_field="user_id",
        strategy="full_only",
        status_all=True,
        columns=(
            Col("name"),
            Col("email"),
            Col("status"),
            Col("user_role"),
            Col("user_type"),
            Col("role_id"),
        ),
    ),
    EntitySpec(
        name="warehouses",
        api="inventory",
        path="/settings/warehouses",
        list_key="warehouses",
        get_key=None,
        singular="warehouse",
        id_field="warehouse_id",
        strategy="full_only",
        # A settings list, not a paged report: Zoho sends every warehouse at once, with no page_context.
        zoho_counts=False,
        columns=(
            Col("warehouse_name"),
            Col("status"),
            Col("is_primary", "bool"),
            Col("city"),
            Col("country"),
        ),
    ),
)

BY_NAME: dict[str, EntitySpec] = {spec.name: spec for spec in ENTITIES}

# Stock on hand per (item, warehouse): not a Zoho entity of its own but read from item details and from
# the per-warehouse item listing; stored like an entity (zoho_id = "<item_id>:<warehouse_id>").
ITEM_STOCK_TABLE = "zoho_item_stock"
ITEM_STOCK_COLUMNS = (
    Col("item_id"),
    Col("warehouse_id"),
    Col("warehouse_name"),
    Col("stock_on_hand", "numeric", "warehouse_stock_on_hand"),
    Col("available_stock", "numeric", "warehouse_available_stock"),
    Col("actual_available_stock", "numeric", "warehouse_actual_available_stock"),
    Col("committed_stock", "numeric", "warehouse_committed_stock"),
    Col("available_for_sale_stock", "numeric", "warehouse_available_for_sale_stock"),
)


def entity(name: str) -> EntitySpec:
    """The spec named `name`, with a clear error listing the known names."""
    try:
        return BY_NAME[name]
    except KeyError:
        raise KeyError(f"unknown entity {name!r}; known: {', '.join(BY_NAME)}") from None


def child_tables() -> dict[str, ChildSpec]:
    """Every child table once (customers and vendors share zoho_contact_persons)."""
    return {child.table: child for spec in ENTITIES for child in spec.children}
