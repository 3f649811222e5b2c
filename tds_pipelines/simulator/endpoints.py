"""The simulator's own table of Zoho collections: paths, envelope keys, list columns, filters and sorting.

This models Zoho, not TDS: it deliberately does not import the TDS entity registry. Admin routes use the TDS
entity names (DESIGN §4), mapped here onto the Zoho collection that holds them.

Choices where Zoho is silent or unconfirmed (the stricter plausible variant is taken):
- ``filter_by`` default: items, contacts and users list only *active* records unless the call asks for
  ``Status.All`` (or another status); documents list every status (``Status.All``) by default.
- Filters a collection does not document (``last_modified_time`` on contacts, payments, adjustments, users;
  date filters on master data) are ignored, as Zoho ignores unknown parameters: the client gets everything.
- Unknown ``filter_by`` status values and unknown ``sort_column`` values answer 400 code 2.
"""

from __future__ import annotations

from dataclasses import dataclass, field

BOOKS = "books"
INVENTORY = "inventory"

_DOCUMENT_STATUS = {
    "Status.Draft": {"draft"},
    "Status.Sent": {"sent"},
    "Status.Open": {"open"},
    "Status.Closed": {"closed"},
    "Status.OverDue": {"overdue"},
    "Status.Paid": {"paid"},
    "Status.PartiallyPaid": {"partially_paid"},
    "Status.Unpaid": {"sent", "overdue", "partially_paid", "open"},
    "Status.Void": {"void"},
    "Status.Invoiced": {"invoiced"},
    "Status.Pending": {"pending_approval"},
}
_MASTER_STATUS = {"Status.Active": {"active"}, "Status.Inactive": {"inactive"}}
_USER_STATUS = {
    "Status.Active": {"active"},
    "Status.Inactive": {"inactive"},
    "Status.Invited": {"invited"},
    "Status.Deleted": {"deleted"},
}


@dataclass(frozen=True)
class Collection:
    """One Zoho collection as the API shows it."""

    name: str  # internal name, also the URL path segment(s) after the API root
    path: str
    apis: frozenset[str]
    list_key: str
    get_key: str | None  # None: no single-record GET
    singular: str  # webhook wrapper key
    id_field: str
    label: str  # for "<Entity> does not exist."
    report_name: str
    summary_fields: tuple[str, ...] | None  # None: list rows are the whole record
    default_sort: tuple[str, str]
    sort_columns: frozenset[str]
    date_field: str | None = None  # date_start/date_end apply
    modified_filter: bool = False  # last_modified_time applies
    has_last_modified: bool = True  # records of this kind carry last_modified_time
    statuses: dict[str, set[str]] = field(default_factory=dict)  # filter_by value -> statuses
    default_filter: str = "Status.All"


_TIMES = ("created_time", "last_modified_time")
_DOC_SORT = frozenset({*_TIMES, "date", "total", "balance", "due_date", "customer_name"})

COLLECTIONS: tuple[Collection, ...] = (
    Collection(
        name="items",
        path="/items",
        apis=frozenset({BOOKS, INVENTORY}),
        list_key="items",
        get_key="item",
        singular="item",
        id_field="item_id",
        label="Item",
        report_name="Items",
        summary_fields=(
            "item_id",
            "name",
            "status",
            "description",
            "rate",
            "unit",
            "tax_id",
            "tax_name",
            "tax_percentage",
            "purchase_description",
            "purchase_rate",
            "is_combo_product",
            "product_type",
            "item_type",
            "is_taxable",
            "track_inventory",
            "reorder_level",
            "stock_on_hand",
            "available_stock",
            "actual_available_stock",
            "sku",
            "upc",
            "ean",
            "image_name",
            "image_type",
            "created_time",
            "last_modified_time",
            "custom_fields",
        ),  # fmt: skip
        default_sort=("name", "A"),
        sort_columns=frozenset({*_TIMES, "name", "sku", "rate", "purchase_rate", "stock_on_hand"}),
        modified_filter=True,
        statuses=_MASTER_STATUS,
        default_filter="Status.Active",
    ),
    Collection(
        name="contacts",
        path="/contacts",
        apis=frozenset({BOOKS, INVENTORY}),
        list_key="contacts",
        get_key="contact",
        singular="contact",
        id_field="contact_id",
        label="Contact",
        report_name="Contacts",
        summary_fields=(
            "contact_id",
            "contact_name",
            "company_name",
            "contact_type",
            "status",
            "payment_terms",
            "payment_terms_label",
            "currency_id",
            "currency_code",
            "outstanding_receivable_amount",
            "outstanding_payable_amount",
            "unused_credits_receivable_amount",
            "first_name",
            "last_name",
            "email",
            "phone",
            "mobile",
            "created_time",
            "last_modified_time",
        ),  # fmt: skip
        default_sort=("contact_name", "A"),
        sort_columns=frozenset({*_TIMES, "contact_name", "company_name", "first_name", "email"}),
        statuses=_MASTER_STATUS,
        default_filter="Status.Active",
    ),
    Collection(
        name="invoices",
        path="/invoices",
        apis=frozenset({BOOKS, INVENTORY}),
        list_key="invoices",
        get_key="invoice",
        singular="invoice",
        id_field="invoice_id",
        label="Invoice",
        report_name="Invoices",
        summary_fields=(
            "invoice_id",
            "ach_payment_initiated",
            "customer_name",
            "customer_id",
            "status",
            "invoice_number",
            "reference_number",
            "date",
            "due_date",
            "due_days",
            "currency_id",
            "schedule_time",
            "currency_code",
            "is_viewed_by_client",
            "has_attachment",
            "client_viewed_time",
            "total",
            "balance",
            "created_time",
            "last_modified_time",
            "is_emailed",
            "reminders_sent",
            "last_reminder_sent_date",
            "payment_expected_date",
            "last_payment_date",
            "custom_fields",
            "documents",
            "location_id",
            "salesperson_id",
            "salesperson_name",
            "shipping_charge",
            "adjustment",
            "write_off_amount",
            "exchange_rate",
        ),  # fmt: skip
        default_sort=("created_time", "D"),
        sort_columns=_DOC_SORT | {"invoice_number"},
        date_field="date",
        modified_filter=True,
        statuses=_DOCUMENT_STATUS,
    ),
    Collection(
        name="salesorders",
        path="/salesorders",
        apis=frozenset({BOOKS, INVENTORY}),
        list_key="salesorders",
        get_key="salesorder",
        singular="salesorder",
        id_field="salesorder_id",
        label="Sales Order",
        report_name="Sales Orders",
        summary_fields=(
            "salesorder_id",
            "customer_name",
            "customer_id",
            "status",
            "order_status",
            "invoiced_status",
            "paid_status",
            "salesorder_number",
            "reference_number",
            "date",
            "shipment_date",
            "currency_id",
            "currency_code",
            "total",
            "sub_total",
            "bcy_total",
            "created_time",
            "last_modified_time",
            "is_emailed",
            "has_attachment",
            "custom_fields",
            "salesperson_id",
            "salesperson_name",
        ),  # fmt: skip
        default_sort=("created_time", "D"),
        sort_columns=_DOC_SORT | {"salesorder_number", "shipment_date"},
        date_field="date",
        modified_filter=True,
        statuses=_DOCUMENT_STATUS,
    ),
    Collection(
        name="customerpayments",
        path="/customerpayments",
        apis=frozenset({BOOKS, INVENTORY}),
        list_key="customerpayments",
        get_key="payment",
        singular="payment",
        id_field="payment_id",
        label="Payment",
        report_name="Payments Received",
        summary_fields=(
            "payment_id",
            "payment_number",
            "invoice_numbers",
            "date",
            "payment_mode",
            "amount",
            "bcy_amount",
            "unused_amount",
            "bank_charges",
            "customer_id",
            "customer_name",
            "reference_number",
            "description",
            "currency_code",
            "status",
            "created_time",
        ),  # fmt: skip
        default_sort=("date", "D"),
        sort_columns=frozenset({"created_time", "date", "amount", "customer_name", "payment_number"}),
        date_field="date",
        has_last_modified=False,
    ),
    Collection(
        name="bills",
        path="/bills",
        apis=frozenset({BOOKS, INVENTORY}),
        list_key="bills",
        get_key="bill",
        singular="bill",
        id_field="bill_id",
        label="Bill",
        report_name="Bills",
        summary_fields=(
            "bill_id",
            "vendor_id",
            "vendor_name",
            "status",
            "bill_number",
            "reference_number",
            "date",
            "due_date",
            "currency_id",
            "currency_code",
            "price_precision",
            "exchange_rate",
            "total",
            "balance",
            "location_id",
            "created_time",
            "last_modified_time",
            "has_attachment",
        ),  # fmt: skip
        default_sort=("created_time", "D"),
        sort_columns=(_DOC_SORT - {"customer_name"}) | {"bill_number", "vendor_name"},
        date_field="date",
        modified_filter=True,
        statuses=_DOCUMENT_STATUS,
    ),
    Collection(
        name="creditnotes",
        path="/creditnotes",
        apis=frozenset({BOOKS, INVENTORY}),
        list_key="creditnotes",
        get_key="creditnote",
        singular="creditnote",
        id_field="creditnote_id",
        label="Credit Note",
        report_name="Credit Notes",
        summary_fields=(
            "creditnote_id",
            "creditnote_number",
            "status",
            "reference_number",
            "date",
            "total",
            "balance",
            "location_id",
            "customer_id",
            "customer_name",
            "currency_id",
            "currency_code",
            "created_time",
            "last_modified_time",
            "is_emailed",
        ),  # fmt: skip
        default_sort=("created_time", "D"),
        sort_columns=_DOC_SORT | {"creditnote_number"},
        date_field="date",
        modified_filter=True,  # switchable: SimulatorConfig.creditnotes_modified_filter
        statuses=_DOCUMENT_STATUS,
    ),
    Collection(
        name="inventoryadjustments",
        path="/inventoryadjustments",
        apis=frozenset({INVENTORY}),
        list_key="inventory_adjustments",
        get_key="inventory_adjustment",
        singular="inventory_adjustment",
        id_field="inventory_adjustment_id",
        label="Inventory Adjustment",
        report_name="Inventory Adjustments",
        summary_fields=(
            "inventory_adjustment_id",
            "date",
            "reason",
            "reason_id",
            "description",
            "reference_number",
            "adjustment_type",
            "status",
            "total",
            "created_time",
            "last_modified_time",
            "custom_fields",
        ),  # fmt: skip
        default_sort=("date", "D"),
        sort_columns=frozenset({*_TIMES, "date", "reference_number", "reason", "total"}),
    ),
    Collection(
        name="pricebooks",
        path="/pricebooks",
        apis=frozenset({INVENTORY}),
        list_key="pricebooks",
        get_key=None,
        singular="pricebook",
        id_field="pricebook_id",
        label="Price List",
        report_name="Price Lists",
        summary_fields=None,
        default_sort=("name", "A"),
        sort_columns=frozenset({"name"}),
        has_last_modified=False,
    ),
    Collection(
        name="users",
        path="/users",
        apis=frozenset({BOOKS, INVENTORY}),
        list_key="users",
        get_key="user",
        singular="user",
        id_field="user_id",
        label="User",
        report_name="Users",
        summary_fields=(
            "user_id",
            "role_id",
            "name",
            "email",
            "user_role",
            "status",
            "is_current_user",
            "photo_url",
            "is_customer_segmented",
            "is_vendor_segmented",
            "user_type",
        ),  # fmt: skip
        default_sort=("name", "A"),
        sort_columns=frozenset({"name", "email", "user_role", "status"}),
        has_last_modified=False,
        statuses=_USER_STATUS,
        default_filter="Status.Active",
    ),
    Collection(
        name="warehouses",
        path="/settings/warehouses",
        apis=frozenset({INVENTORY}),
        list_key="warehouses",
        get_key=None,
        singular="warehouse",
        id_field="warehouse_id",
        label="Warehouse",
        report_name="Warehouses",
        summary_fields=None,
        default_sort=("warehouse_name", "A"),
        sort_columns=frozenset({"warehouse_name"}),
        has_last_modified=False,
    ),
)

BY_NAME: dict[str, Collection] = {c.name: c for c in COLLECTIONS}
BY_PATH: dict[str, Collection] = {c.path: c for c in COLLECTIONS}
API_ROOTS = {"/books/v3": BOOKS, "/inventory/v1": INVENTORY}
ITEMDETAILS_PATH = "/itemdetails"


@dataclass(frozen=True)
class AdminEntity:
    """A TDS entity name as the admin routes and fixtures files use it."""

    name: str
    collection: str
    contact_type: str | None = None  # customers and vendors share the contacts collection


ADMIN_ENTITIES: dict[str, AdminEntity] = {
    e.name: e
    for e in (
        AdminEntity("products", "items"),
        AdminEntity("customers", "contacts", "customer"),
        AdminEntity("vendors", "contacts", "vendor"),
        AdminEntity("invoices", "invoices"),
        AdminEntity("sales_orders", "salesorders"),
        AdminEntity("customer_payments", "customerpayments"),
        AdminEntity("bills", "bills"),
        AdminEntity("credit_notes", "creditnotes"),
        AdminEntity("stock_adjustments", "inventoryadjustments"),
        AdminEntity("price_lists", "pricebooks"),
        AdminEntity("users", "users"),
        AdminEntity("warehouses", "warehouses"),
    )
}


def admin_entity_name(collection: str, record: dict) -> str | None:
    """The TDS entity a record of a Zoho collection belongs to (a contact: by its contact_type)."""
    for entity in ADMIN_ENTITIES.values():
        if entity.collection == collection and entity.contact_type in (None, record.get("contact_type")):
            return entity.name
    return None
