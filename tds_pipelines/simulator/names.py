"""Word lists for generated names: Iraqi people, companies, places, products (Arabic and English)."""


def _words(text: str) -> list[str]:
    return text.split("|")


FIRST_AR = _words("محمد|أحمد|علي|حسين|حسن|عمر|زينب|فاطمة|مريم|نور|سارة|يوسف|مصطفى|عباس|كرار|رقية|إبراهيم|خالد|هدى|سجاد")

FIRST_EN = _words(
    "Mohammed|Ahmed|Ali|Hussein|Hassan|Omar|Zainab|Fatima|Maryam|Noor|Sara|Yousif|"
    "Mustafa|Abbas|Karrar|Ruqaya|Ibrahim|Khalid|Huda|Sajjad"
)

LAST_AR = _words("الجبوري|العبيدي|الدليمي|التميمي|الساعدي|الربيعي|الخفاجي|الموسوي|الحسيني|الكبيسي|البياتي|الزبيدي")

LAST_EN = _words(
    "Al-Jubouri|Al-Obaidi|Al-Dulaimi|Al-Tamimi|Al-Saadi|Al-Rubaie|Al-Khafaji|"
    "Al-Musawi|Al-Husseini|Al-Kubaisi|Al-Bayati|Al-Zubaidi"
)

COMPANY_AR = _words(
    "شركة الرافدين للتجارة العامة|مؤسسة دجلة التجارية|شركة بابل للمواد الغذائية|"
    "مكتب الفرات للاستيراد|شركة آشور للمقاولات|مجموعة سومر|شركة النخيل للأدوية|"
    "شركة الشمال للإلكترونيات|مخازن الكرادة|شركة زاكروس للتجارة"
)

COMPANY_EN = _words(
    "Al-Rafidain General Trading Co.|Tigris Trading Est.|Babylon Foodstuff Co.|"
    "Euphrates Import Office|Ashur Contracting Co.|Sumer Group|Al-Nakheel Pharma|"
    "Northern Electronics Co.|Karrada Stores|Zagros Trading LLC"
)

STREETS = _words(
    "شارع الرشيد|Karrada Dakhil St.|شارع فلسطين|Al-Mansour St. 14|شارع الجمهورية|"
    "60 Meter St.|Zayouna, Block 712|شارع السعدون"
)

BRANDS = _words("Al-Waha|Dijla|Furat|Zagros|Babil|Ashur|Sumer|Nineveh")

SIZES_BY_UNIT = {
    "bottle": _words("750ml|1L|1.8L|5L"),
    "bag": _words("1kg|5kg|10kg|25kg|50kg"),
    "box": _words("12 pcs|24 pcs|100 pcs|500g"),
    "can": _words("400g|800g|4L|18L"),
    "ton": _words("8mm|12mm|16mm|Grade 60"),
    "pcs": _words("Standard|Large|1.5 Ton|2 Ton|128GB|256GB"),
    "roll": _words("50m|100m|2.5mm²|4mm²"),
}

CITIES = [
    tuple(row.split("|"))
    for row in (
        "Baghdad|بغداد|Baghdad",
        "Basra|البصرة|Basra",
        "Erbil|أربيل|Erbil",
        "Mosul|الموصل|Nineveh",
        "Najaf|النجف|Najaf",
        "Karbala|كربلاء|Karbala",
        "Kirkuk|كركوك|Kirkuk",
        "Sulaymaniyah|السليمانية|Sulaymaniyah",
    )
]

PRODUCTS = [
    tuple(row.split("|"))
    for row in (
        "Olive Oil|زيت زيتون|bottle",
        "Basmati Rice|رز بسمتي|bag",
        "Sugar|سكر|bag",
        "Black Tea|شاي أسود|box",
        "Flour|طحين|bag",
        "Tomato Paste|معجون طماطم|can",
        "Detergent|مسحوق غسيل|box",
        "Cement|سمنت|bag",
        "Steel Rebar|حديد تسليح|ton",
        "Air Conditioner|مكيف هواء|pcs",
        "Generator|مولدة كهربائية|pcs",
        "Water Pump|مضخة ماء|pcs",
        "Laptop|حاسوب محمول|pcs",
        "Mobile Phone|هاتف نقال|pcs",
        "Paracetamol 500mg|باراسيتامول 500 ملغ|box",
        "Dates|تمر|box",
        "Sunflower Oil|زيت زهرة الشمس|bottle",
        "Lentils|عدس|bag",
        "Baby Milk|حليب أطفال|can",
        "LED Lamp|مصباح ليد|pcs",
        "Copper Cable|كيبل نحاس|roll",
        "Paint|صبغ|can",
    )
]

WAREHOUSES = [
    tuple(row.split("|"))
    for row in (
        "مخزن بغداد الرئيسي|Baghdad Main Warehouse|Baghdad|Baghdad",
        "مخزن البصرة|Basra Warehouse|Basra|Basra",
        "مخزن أربيل|Erbil Warehouse|Erbil|Erbil",
        "مخزن الموصل|Mosul Warehouse|Mosul|Nineveh",
        "مخزن النجف|Najaf Warehouse|Najaf|Najaf",
    )
]

REASONS = [
    tuple(row.split("|"))
    for row in (
        "Damaged goods|4815000000044110",
        "Stock count correction|4815000000044111",
        "Expired|4815000000044112",
        "Opening stock|4815000000044113",
    )
]

TAXES = [("", "", 0), ("982000000557028", "Sales Tax", 10), ("982000000557031", "Service Tax", 5)]

TERMS = [(0, "Due on Receipt"), (15, "Net 15"), (30, "Net 30"), (45, "Net 45")]

PAY_MODES = ["cash", "banktransfer", "check", "creditcard", "Zain Cash"]

ROLES = [("admin", "982000000006005"), ("staff", "982000000006007"), ("timesheetstaff", "982000000006009")]
PRICE_LIST_NAMES = ["Wholesale", "قائمة أسعار الجملة", "Retail", "VIP", "تجار البصرة"]
