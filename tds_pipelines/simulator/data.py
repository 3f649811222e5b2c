"""Deterministic generator of a realistic Iraqi trading organization's Zoho data (seeded `random.Random`).

Records are plain dicts in Zoho's single-record GET shape (the documented examples' field names): IDs are
digit strings, timestamps `2024-03-18T14:02:51+0300`, dates spread over 2019..2026, amounts in Iraqi dinars
(IQD, some documents in USD), Arabic and English names. Zoho's quirks are reproduced on purpose: a few
numeric fields are `""`, some strings are `" "`, a few records lack `last_modified_time`, customer payments
and users never carry it, credit notes show `updated_time`.

Generation is one pass of cheap dict building: 50,000 items and 10,000 invoices take a few seconds.
"""

from __future__ import annotations

import calendar
import time
from collections.abc import Callable
from datetime import date
from random import Random

from tds_pipelines.simulator import names as w
from tds_pipelines.simulator.config import SimulatorConfig
from tds_pipelines.simulator.timestamps import format_ts

_START = calendar.timegm((2019, 1, 1, 0, 0, 0))
_FIXED_END = calendar.timegm((2026, 10, 31, 12, 0, 0))
_DAY = 86400

IQD = ("982000000000190", "IQD", "IQD")
USD = ("982000000000191", "USD", "$")
USD_RATE = 1310.0


def _end_epoch() -> int:
    # A fixed end keeps the data reproducible; never generate times after "now".
    return min(_FIXED_END, int(time.time()) - _DAY)


class DataGenerator:
    """Builds the records; one instance per simulator (its id counter keeps every id unique)."""

    def __init__(self, seed: int) -> None:
        self.rng = Random(seed)
        self._next = self.rng.randint(460, 989) * 10**12 + 10**9
        self.end = _end_epoch()

    # ---- small helpers -------------------------------------------------------------------------------
    def new_id(self) -> str:
        self._next += self.rng.randint(1, 40)
        return str(self._next)

    def _date_epoch(self) -> int:
        day = self.rng.randint(0, (self.end - _START) // _DAY)
        return _START + day * _DAY

    def _times(self, day_epoch: int, with_modified_share: float = 0.97) -> tuple[str, str | None]:
        """created_time on (or just after) the document day; last_modified_time at or after it, or none."""
        rng = self.rng
        created = min(day_epoch + rng.randint(5 * 3600, 20 * 3600) - 3 * 3600, self.end)
        if rng.random() >= with_modified_share:
            return format_ts(created), None
        r = rng.random()
        modified = created + (rng.randint(0, 900) if r < 0.55 else rng.randint(3600, 420 * _DAY))
        if modified > self.end:  # spread over the past, not piled on one instant
            modified = rng.randint(created, self.end) if created < self.end else self.end
        return format_ts(created), format_ts(modified)

    def _blank_number(self, value: float | int, share: float = 0.03) -> float | int | str:
        return "" if self.rng.random() < share else value

    def _space(self, value: str, share: float = 0.3) -> str:
        return " " if self.rng.random() < share else value

    def _person(self) -> tuple[str, str, str]:
        """(first, last, display) in Arabic or English."""
        rng = self.rng
        i, j = rng.randrange(len(w.FIRST_EN)), rng.randrange(len(w.LAST_EN))
        if rng.random() < 0.5:
            return w.FIRST_AR[i], w.LAST_AR[j], f"{w.FIRST_AR[i]} {w.LAST_AR[j]}"
        return w.FIRST_EN[i], w.LAST_EN[j], f"{w.FIRST_EN[i]} {w.LAST_EN[j]}"

    def _phone(self) -> str:
        rng = self.rng
        return f"+964 7{rng.choice('5789')}{rng.randint(0, 9)} {rng.randint(100, 999)} {rng.randint(1000, 9999)}"

    def _address(self) -> dict:
        city_en, city_ar, state = self.rng.choice(w.CITIES)
        arabic = self.rng.random() < 0.5
        return {
            "attention": " ",
            "address": self.rng.choice(w.STREETS),
            "street2": " ",
            "city": city_ar if arabic else city_en,
            "state": state,
            "zip": str(self.rng.randint(10001, 64099)),
            "country": "العراق" if arabic else "Iraq",
            "phone": self._phone(),
            "fax": "",
        }

    def _custom_fields(self, label: str, value: str) -> list[dict]:
        return [
            {
                "customfield_id": "46000000012845",
                "index": 1,
                "label": label,
                "value": value,
                "data_type": "text",
            }
        ]

    # ---- master data ---------------------------------------------------------------------------------
    def warehouses(self, n: int) -> list[dict]:
        out = []
        for k in range(min(n, len(w.WAREHOUSES))):
            name_ar, name_en, city, state = w.WAREHOUSES[k]
            out.append(
                {
                    "warehouse_id": self.new_id(),
                    "warehouse_name": name_en if k % 2 == 0 else name_ar,
                    "attention": " ",
                    "address": self.rng.choice(w.STREETS),
                    "address1": self.rng.choice(w.STREETS),
                    "address2": "",
                    "city": city,
                    "state": state,
                    "country": "Iraq",
                    "zip": str(self.rng.randint(10001, 64099)),
                    "phone": self._phone(),
                    "email": f"warehouse{k + 1}@tds-trading.iq",
                    "is_primary": k == 0,
                    "status": "active",
                    "status_formatted": "Active",
                }
            )
        return out

    def users(self, n: int) -> list[dict]:
        out = []
        for k in range(n):
            first, last, name = self._person()
            email = f"user{k + 1}@tds-trading.iq"
            role, role_id = w.ROLES[0] if k == 0 else self.rng.choice(w.ROLES)
            status = (
                "active" if k == 0 else self.rng.choices(["active", "inactive", "invited", "deleted"], [85, 7, 4, 4])[0]
            )
            created, _ = self._times(self._date_epoch())
            out.append(
                {
                    "user_id": self.new_id(),
                    "name": name,
                    "email": email,
                    "email_ids": [{"email": email, "is_selected": True}],
                    "status": status,
                    "user_role": role,
                    "user_type": "zoho",
                    "role_id": role_id,
                    "cost_rate": self._blank_number(0),
                    "photo_url": f"https://contacts.zoho.com/file?ID={self.rng.randint(10**7, 10**8)}",
                    "is_current_user": k == 0,
                    "is_employee": True,
                    "is_customer_segmented": False,
                    "is_vendor_segmented": False,
                    "created_time": created,
                    "custom_fields": "",
                }
            )
        return out

    def items(self, n: int, warehouses: list[dict], vendors: list[dict]) -> list[dict]:
        rng = self.rng
        out = []
        seen: set[str] = set()
        for k in range(n):
            en, ar, unit = rng.choice(w.PRODUCTS)
            brand, size = rng.choice(w.BRANDS), rng.choice(w.SIZES_BY_UNIT[unit])
            sku = f"SKU-{k + 1:06d}"
            name = f"{ar} {brand} {size}" if rng.random() < 0.4 else f"{brand} {en} {size}"
            if name in seen:
                name = f"{name} - {sku}"
            seen.add(name)
            rate = rng.randint(1, 2000) * 250
            tax_id, tax_name, tax_pct = rng.choice(w.TAXES)
            stock_rows, total_on_hand, total_available = [], 0, 0
            for wh in warehouses:
                on_hand = rng.randint(0, 400) if rng.random() < 0.8 else 0
                committed = rng.randint(0, on_hand // 4) if on_hand else 0
                stock_rows.append(
                    {
                        "warehouse_id": wh["warehouse_id"],
                        "warehouse_name": wh["warehouse_name"],
                        "status": "active",
                        "is_primary": wh.get("is_primary", False),
                        "warehouse_stock_on_hand": on_hand,
                        "warehouse_available_stock": on_hand - committed,
                        "warehouse_actual_available_stock": on_hand - committed,
                        "warehouse_committed_stock": committed,
                        "warehouse_available_for_sale_stock": on_hand - committed,
                    }
                )
                total_on_hand += on_hand
                total_available += on_hand - committed
            vendor = rng.choice(vendors) if vendors else None
            created, modified = self._times(self._date_epoch())
            record = {
                "item_id": self.new_id(),
                "name": name,
                "sku": sku,
                "unit": unit,
                "status": "active" if rng.random() < 0.93 else "inactive",
                "item_type": "inventory",
                "product_type": "goods",
                "is_combo_product": False,
                "can_be_sold": True,
                "can_be_purchased": True,
                "track_inventory": True,
                "is_taxable": bool(tax_id),
                "tax_id": tax_id,
                "tax_name": tax_name,
                "tax_percentage": tax_pct,
                "tax_type": "tax" if tax_id else "",
                "description": self._space(f"{en} — {brand}, {size}", 0.2),
                "purchase_description": self._space(f"{ar} {size}", 0.3),
                "rate": rate,
                "pricebook_rate": rate,
                "purchase_rate": self._blank_number(round(rate * rng.uniform(0.6, 0.9) / 250) * 250),
                "account_name": "Sales",
                "purchase_account_name": "Cost of Goods Sold",
                "reorder_level": self._blank_number(rng.choice([0, 5, 10, 20, 50]), 0.05),
                "vendor_id": vendor["contact_id"] if vendor else "",
                "vendor_name": vendor["contact_name"] if vendor else "",
                "upc": str(rng.randint(10**11, 10**12 - 1)),
                "ean": str(rng.randint(10**12, 10**13 - 1)),
                "image_name": "",
                "image_type": "",
                "stock_on_hand": total_on_hand,
                "available_stock": total_available,
                "actual_available_stock": total_available,
                "warehouses": stock_rows,
                "custom_fields": self._custom_fields("Origin", rng.choice(["Iraq", "Turkey", "Iran", "UAE", "China"])),
                "created_time": created,
            }
            if modified:
                record["last_modified_time"] = modified
            out.append(record)
        return out

    def contacts(self, n: int, contact_type: str) -> list[dict]:
        rng = self.rng
        out = []
        for k in range(n):
            first, last, person = self._person()
            arabic_company = rng.random() < 0.5
            base = rng.choice(w.COMPANY_AR if arabic_company else w.COMPANY_EN)
            city_en, city_ar, _ = rng.choice(w.CITIES)
            company = f"{base} - {city_ar if arabic_company else city_en} {k + 1}"
            currency = USD if rng.random() < 0.1 else IQD
            terms = rng.choice(w.TERMS)
            persons = []
            for p in range(rng.randint(1, 3)):
                pf, pl, _ = self._person() if p else (first, last, person)
                persons.append(
                    {
                        "contact_person_id": self.new_id(),
                        "salutation": rng.choice(["Mr.", "Ms.", "Dr.", " "]),
                        "first_name": pf,
                        "last_name": pl,
                        "email": f"contact{k + 1}.{p + 1}@{contact_type}s.example.iq",
                        "phone": self._phone(),
                        "mobile": self._phone(),
                        "designation": self._space("Purchasing Manager", 0.4),
                        "department": self._space("Procurement", 0.4),
                        "is_primary_contact": p == 0,
                        "enable_portal": False,
                    }
                )
            created, modified = self._times(self._date_epoch())
            receivable = rng.randint(0, 400) * 5000 if contact_type == "customer" else 0
            payable = rng.randint(0, 400) * 5000 if contact_type == "vendor" else 0
            record = {
                "contact_id": self.new_id(),
                "contact_name": company,
                "company_name": company,
                "has_transaction": True,
                "contact_type": contact_type,
                "customer_sub_type": "business",
                "contact_number": f"CNT-{k + 1:05d}",
                "credit_limit": self._blank_number(rng.choice([0, 5_000_000, 25_000_000])),
                "is_taxable": False,
                "website": self._space(f"www.company{k + 1}.iq", 0.5),
                "language_code": "ar" if arabic_company else "en",
                "primary_contact_id": persons[0]["contact_person_id"],
                "payment_terms": terms[0],
                "payment_terms_label": terms[1],
                "currency_id": currency[0],
                "currency_code": currency[1],
                "currency_symbol": currency[2],
                "outstanding_receivable_amount": receivable,
                "outstanding_payable_amount": payable,
                "unused_credits_receivable_amount": self._blank_number(0),
                "status": "active" if rng.random() < 0.92 else "inactive",
                "first_name": first,
                "last_name": last,
                "email": persons[0]["email"],
                "phone": persons[0]["phone"],
                "mobile": persons[0]["mobile"],
                "custom_fields": self._custom_fields("Region", rng.choice(["North", "Center", "South"])),
                "billing_address": self._address(),
                "shipping_address": self._address(),
                "contact_persons": persons,
                "notes": self._space("", 1.0),
                "created_time": created,
            }
            if modified:
                record["last_modified_time"] = modified
            out.append(record)
        return out

    def price_lists(self, n: int, items: list[dict]) -> list[dict]:
        rng = self.rng
        out = []
        for k in range(n):
            per_item = rng.random() < 0.6
            entries = []
            if per_item and items:
                for item in rng.sample(items, min(len(items), rng.randint(1, 20))):
                    price = round(item["rate"] * rng.uniform(0.8, 1.0) / 250) * 250
                    entry_id = self.new_id()
                    entries.append(
                        {
                            "pricebook_item_id": entry_id,
                            "item_id": item["item_id"],
                            "name": item["name"],
                            "sku": item["sku"],
                            "status": "active",
                            "rate": item["rate"],
                            "pricebook_rate": price,
                            "pricebook_discount": "" if rng.random() < 0.5 else "5%",
                            "pricing_scheme": "unit",
                            "price_brackets": [],
                        }
                    )
            out.append(
                {
                    "pricebook_id": self.new_id(),
                    "name": f"{rng.choice(w.PRICE_LIST_NAMES)} {k + 1}",
                    "description": self._space("Price list for trade customers", 0.4),
                    "currency_id": IQD[0],
                    "currency_code": IQD[1],
                    "decimal_place": 0,
                    "is_default": k == 0,
                    "is_increase": rng.random() < 0.3,
                    "percentage": "" if per_item else rng.choice([2, 5, 10, 15]),
                    "pricebook_type": "per_item" if per_item else "fixed_percentage",
                    "pricing_scheme": "unit",
                    "rounding_type": "no_rounding",
                    "sales_or_purchase_type": rng.choice(["sales", "sales", "purchases"]),
                    "status": "active" if rng.random() < 0.9 else "inactive",
                    "pricebook_items": entries,
                }
            )
        return out

    # ---- documents -----------------------------------------------------------------------------------
    def _line_items(self, items: list[dict], warehouses: list[dict], usd: bool, with_account: str | None = None):
        rng = self.rng
        lines, sub_total, tax_total = [], 0.0, 0.0
        for order in range(1, rng.randint(1, 9) + 1):
            item = rng.choice(items) if items else None
            wh = rng.choice(warehouses) if warehouses else None
            rate = item["rate"] if item else rng.randint(1, 2000) * 250
            if usd:
                rate = round(rate / USD_RATE, 2)
            quantity = rng.randint(1, 40)
            discount = rng.choice([0, 0, 0, 5, 10])
            item_total = round(rate * quantity * (100 - discount) / 100, 2 if usd else 0)
            tax_id, tax_name, tax_pct = (
                (item["tax_id"], item["tax_name"], item["tax_percentage"]) if item else w.TAXES[0]
            )
            sub_total += item_total
            tax_total += item_total * (tax_pct or 0) / 100
            line = {
                "line_item_id": self.new_id(),
                "item_id": item["item_id"] if item else "",
                "sku": item["sku"] if item else "",
                "name": item["name"] if item else "Service",
                "description": self._space("", 0.7),
                "item_order": order,
                "bcy_rate": round(rate * USD_RATE, 2) if usd else rate,
                "rate": rate,
                "quantity": quantity,
                "unit": self._space(item["unit"] if item else "pcs", 0.2),
                "discount": self._blank_number(discount, 0.02),
                "discount_amount": round(rate * quantity * discount / 100, 2 if usd else 0),
                "tax_id": tax_id,
                "tax_name": tax_name,
                "tax_type": "tax" if tax_id else "",
                "tax_percentage": tax_pct,
                "item_total": item_total,
                "warehouse_id": wh["warehouse_id"] if wh else "",
                "warehouse_name": wh["warehouse_name"] if wh else "",
                "item_custom_fields": [],
            }
            if with_account:
                line["account_id"] = "982000000000403"
                line["account_name"] = with_account
            lines.append(line)
        digits = 2 if usd else 0
        return lines, round(sub_total, digits), round(tax_total, digits)

    def _document(
        self,
        parties: list[dict],
        items: list[dict],
        warehouses: list[dict],
        salespeople: list[dict],
        number_field: str,
        prefix: str,
        n_index: int,
        statuses: tuple[list[str], list[int]],
        account: str | None = None,
    ) -> tuple[dict, int]:
        rng = self.rng
        party = rng.choice(parties) if parties else None
        usd = (party or {}).get("currency_code") == "USD"
        currency = USD if usd else IQD
        day = self._date_epoch()
        created, modified = self._times(day)
        lines, sub_total, tax_total = self._line_items(items, warehouses, usd, account)
        shipping = self._blank_number(rng.choice([0, 0, 10000, 25000]) if not usd else 0)
        total = round(sub_total + tax_total + (shipping or 0), 2)
        status = rng.choices(*statuses)[0]
        terms = rng.choice(w.TERMS)
        person = rng.choice(salespeople) if salespeople else None
        wh = rng.choice(warehouses) if warehouses else None
        doc = {
            number_field: f"{prefix}-{n_index + 1:06d}",
            "date": time.strftime("%Y-%m-%d", time.gmtime(day)),
            "status": status,
            "reference_number": self._space(f"REF-{rng.randint(1000, 99999)}", 0.4),
            "payment_terms": terms[0],
            "payment_terms_label": terms[1],
            "due_date": time.strftime("%Y-%m-%d", time.gmtime(day + terms[0] * _DAY)),
            "currency_id": currency[0],
            "currency_code": currency[1],
            "currency_symbol": currency[2],
            "exchange_rate": USD_RATE if usd else 1.0,
            "price_precision": 2 if usd else 0,
            "discount": self._blank_number(0),
            "is_discount_before_tax": True,
            "discount_type": "item_level",
            "is_inclusive_tax": False,
            "location_id": wh["warehouse_id"] if wh else "",
            "line_items": lines,
            "shipping_charge": shipping,
            "adjustment": self._blank_number(0),
            "adjustment_description": " ",
            "sub_total": sub_total,
            "tax_total": tax_total,
            "total": total,
            "taxes": [{"tax_name": "Sales Tax", "tax_amount": tax_total}] if tax_total else [],
            "is_emailed": rng.random() < 0.4,
            "has_attachment": False,
            "salesperson_id": person["user_id"] if person else " ",
            "salesperson_name": person["name"] if person else " ",
            "notes": self._space("شكراً لتعاملكم معنا", 0.5),
            "terms": self._space("Payment within agreed terms.", 0.5),
            "custom_fields": self._custom_fields("Branch", rng.choice(["Baghdad", "Basra", "Erbil"])),
            "template_id": "982000000000143",
            "template_name": "Standard Template",
            "created_by_id": person["user_id"] if person else "",
            "created_time": created,
        }
        if party is not None:
            if party.get("contact_type") == "vendor":
                doc["vendor_id"], doc["vendor_name"] = party["contact_id"], party["contact_name"]
            else:
                doc["customer_id"], doc["customer_name"] = party["contact_id"], party["contact_name"]
            doc["billing_address"] = party.get("billing_address") or self._address()
            doc["shipping_address"] = party.get("shipping_address") or self._address()
        if modified:
            doc["last_modified_time"] = modified
        return doc, day

    def invoices(self, n: int, customers, items, warehouses, users) -> list[dict]:
        statuses = (["draft", "sent", "paid", "overdue", "partially_paid", "void"], [5, 15, 55, 10, 10, 5])
        out = []
        for k in range(n):
            doc, day = self._document(customers, items, warehouses, users, "invoice_number", "INV", k, statuses)
            total, status = doc["total"], doc["status"]
            if status in ("paid", "void"):
                balance = 0
            elif status == "partially_paid":
                balance = round(total * 0.4, 2 if doc["currency_code"] == "USD" else 0)
            else:
                balance = total
            invoice = {"invoice_id": self.new_id(), **doc}
            invoice.update(
                ach_payment_initiated=False,
                due_days=" ",
                payment_expected_date=" ",
                last_payment_date=doc["date"] if status in ("paid", "partially_paid") else " ",
                payment_made=round(total - balance, 2) if status != "void" else 0,
                credits_applied=0,
                write_off_amount=0,
                balance=balance,
                schedule_time="",
                is_viewed_by_client=False,
                client_viewed_time="",
                reminders_sent=0,
                last_reminder_sent_date=" ",
                documents="",
                allow_partial_payments=True,
            )
            out.append(invoice)
        return out

    def sales_orders(self, n: int, customers, items, warehouses, users) -> list[dict]:
        statuses = (["draft", "open", "invoiced", "closed", "void"], [10, 30, 40, 15, 5])
        out = []
        for k in range(n):
            doc, day = self._document(customers, items, warehouses, users, "salesorder_number", "SO", k, statuses)
            invoiced = doc["status"] in ("invoiced", "closed")
            doc.update(
                salesorder_id=self.new_id(),
                shipment_date=time.strftime("%Y-%m-%d", time.gmtime(day + self.rng.randint(0, 10) * _DAY)),
                order_status=doc["status"],
                invoiced_status="invoiced" if invoiced else "not_invoiced",
                paid_status="paid" if doc["status"] == "closed" else "unpaid",
                shipped_status="fulfilled" if invoiced else "pending",
                delivery_method=self.rng.choice(["Truck", "Pickup", "Courier", " "]),
                bcy_total=round(doc["total"] * doc["exchange_rate"], 2),
            )
            out.append({"salesorder_id": doc.pop("salesorder_id"), **doc})
        return out

    def bills(self, n: int, vendors, items, warehouses) -> list[dict]:
        statuses = (["draft", "open", "paid", "overdue", "partially_paid", "void"], [5, 25, 50, 8, 8, 4])
        out = []
        for k in range(n):
            doc, _ = self._document(
                vendors, items, warehouses, [], "bill_number", "BILL", k, statuses, "Cost of Goods Sold"
            )
            for key in (
                "salesperson_id",
                "salesperson_name",
                "shipping_charge",
                "shipping_address",
                "is_emailed",
            ):
                doc.pop(key, None)
            status = doc["status"]
            balance = 0 if status in ("paid", "void") else doc["total"]
            doc.update(balance=balance, payment_made=round(doc["total"] - balance, 2) if status != "void" else 0)
            out.append({"bill_id": self.new_id(), **doc})
        return out

    def credit_notes(self, n: int, customers, items, warehouses, users, invoices) -> list[dict]:
        statuses = (["draft", "open", "closed", "void"], [10, 35, 50, 5])
        out = []
        for k in range(n):
            doc, _ = self._document(customers, items, warehouses, users, "creditnote_number", "CN", k, statuses)
            status = doc["status"]
            doc["balance"] = doc["total"] if status == "open" else 0
            applied = []
            if invoices and status == "closed":
                inv = self.rng.choice(invoices)
                applied.append(
                    {
                        "invoice_id": inv["invoice_id"],
                        "invoice_number": inv["invoice_number"],
                        "amount": doc["total"],
                    }
                )
            doc["invoices"] = applied
            modified = doc.pop("last_modified_time", None)
            record = {"creditnote_id": self.new_id(), **doc}
            if modified:  # the list shows last_modified_time, the GET shows updated_time (store.get_view)
                record["last_modified_time"] = modified
            out.append(record)
        return out

    def customer_payments(self, n: int, customers, invoices) -> list[dict]:
        rng = self.rng
        out = []
        by_customer: dict[str, list[dict]] = {}
        for inv in invoices:
            if inv.get("status") != "void" and inv.get("customer_id"):
                by_customer.setdefault(inv["customer_id"], []).append(inv)
        payers = [c for c in customers if c["contact_id"] in by_customer] or customers
        for k in range(n):
            customer = rng.choice(payers) if payers else None
            own = by_customer.get(customer["contact_id"], []) if customer else []
            applied, amount = [], 0.0
            for inv in rng.sample(own, min(len(own), rng.randint(1, 3))):
                digits = 2 if inv.get("currency_code") == "USD" else 0
                part = round(float(inv["total"]) * rng.choice([1, 1, 0.5]), digits)
                amount += part
                applied.append(
                    {
                        "invoice_payment_id": self.new_id(),
                        "invoice_id": inv["invoice_id"],
                        "invoice_number": inv["invoice_number"],
                        "date": inv["date"],
                        "invoice_amount": inv["total"],
                        "amount_applied": part,
                        "balance_amount": round(float(inv["total"]) - part, 2),
                    }
                )
            unused = rng.choice([0, 0, 0, 50000])
            amount = round(amount + unused, 2) or float(rng.randint(1, 400) * 5000)
            day = self._date_epoch()
            if applied:  # paid on or after the latest invoice it settles
                latest = max(calendar.timegm(date.fromisoformat(a["date"]).timetuple()) for a in applied)
                day = min(self.end, latest + rng.randint(0, 40) * _DAY)
            created, _ = self._times(day)
            usd = (customer or {}).get("currency_code") == "USD"
            currency = USD if usd else IQD
            out.append(
                {
                    "payment_id": self.new_id(),
                    "payment_number": str(k + 1),
                    "payment_mode": rng.choice(w.PAY_MODES),
                    "amount": amount,
                    "bcy_amount": round(amount * (USD_RATE if usd else 1), 2),
                    "amount_refunded": 0,
                    "bank_charges": self._blank_number(0),
                    "unused_amount": unused,
                    "date": time.strftime("%Y-%m-%d", time.gmtime(day)),
                    "status": "success",
                    "reference_number": self._space(f"TRX-{rng.randint(10000, 999999)}", 0.3),
                    "description": self._space("Payment received", 0.3),
                    "customer_id": customer["contact_id"] if customer else "",
                    "customer_name": customer["contact_name"] if customer else "",
                    "email": (customer or {}).get("email", ""),
                    "invoice_numbers": ", ".join(a["invoice_number"] for a in applied),
                    "invoices": applied,
                    "currency_code": currency[1],
                    "currency_symbol": currency[2],
                    "exchange_rate": USD_RATE if usd else 1.0,
                    "custom_fields": [],
                    "created_time": created,
                }
            )
        return out

    def stock_adjustments(self, n: int, items: list[dict], warehouses: list[dict]) -> list[dict]:
        rng = self.rng
        out = []
        for k in range(n):
            reason, reason_id = rng.choice(w.REASONS)
            lines, total = [], 0.0
            for _ in range(rng.randint(1, 9)):
                item = rng.choice(items) if items else None
                wh = rng.choice(warehouses) if warehouses else None
                qty = rng.randint(-20, 40) or 1
                value = round(qty * float((item or {}).get("purchase_rate") or (item or {}).get("rate") or 1000), 2)
                total += value
                lines.append(
                    {
                        "line_item_id": self.new_id(),
                        "item_id": item["item_id"] if item else "",
                        "name": item["name"] if item else "",
                        "sku": item["sku"] if item else "",
                        "description": self._space("", 0.8),
                        "quantity_adjusted": qty,
                        "item_total": value,
                        "unit": item["unit"] if item else "pcs",
                        "is_combo_product": False,
                        "adjustment_account_id": "4815000000000388",
                        "adjustment_account_name": "Cost of Goods Sold",
                        "warehouse_id": wh["warehouse_id"] if wh else "",
                        "warehouse_name": wh["warehouse_name"] if wh else "",
                    }
                )
            day = self._date_epoch()
            created, modified = self._times(day)
            record = {
                "inventory_adjustment_id": self.new_id(),
                "date": time.strftime("%Y-%m-%d", time.gmtime(day)),
                "reason": reason,
                "reason_id": reason_id,
                "description": self._space("Quarterly stock count", 0.5),
                "reference_number": f"ADJ-{k + 1:05d}",
                "adjustment_type": "quantity",
                "status": "adjusted" if rng.random() < 0.95 else "draft",
                "line_items": lines,
                "total": round(total, 2),
                "custom_fields": [],
                "created_time": created,
            }
            if modified:
                record["last_modified_time"] = modified
            out.append(record)
        return out


def generate(config: SimulatorConfig, loaded: dict[str, list[dict]]) -> dict[str, list[dict]]:
    """Every TDS entity's records: those in `loaded` (fixtures) as given, the others generated.

    Generated documents point at the loaded or generated contacts, items, warehouses and users."""
    gen = DataGenerator(config.seed)
    out: dict[str, list[dict]] = {}

    def take(entity: str, build: Callable[[int], list[dict]], default: int | None = None) -> list[dict]:
        if entity not in loaded:
            out[entity] = build(config.records_for(entity, default))
        else:
            out[entity] = loaded[entity]
        return out[entity]

    warehouses = take("warehouses", gen.warehouses, default=3)
    users = take("users", gen.users, default=min(config.records, 25))
    customers = take("customers", lambda n: gen.contacts(n, "customer"))
    vendors = take("vendors", lambda n: gen.contacts(n, "vendor"))
    items = take("products", lambda n: gen.items(n, warehouses, vendors))
    take("price_lists", lambda n: gen.price_lists(n, items), default=min(config.records, 20))
    salespeople = [u for u in users if u.get("status") == "active"][:10]
    invoices = take("invoices", lambda n: gen.invoices(n, customers, items, warehouses, salespeople))
    take("sales_orders", lambda n: gen.sales_orders(n, customers, items, warehouses, salespeople))
    take("bills", lambda n: gen.bills(n, vendors, items, warehouses))
    take("credit_notes", lambda n: gen.credit_notes(n, customers, items, warehouses, salespeople, invoices))
    take("customer_payments", lambda n: gen.customer_payments(n, customers, invoices))
    take("stock_adjustments", lambda n: gen.stock_adjustments(n, items, warehouses))
    return out
