from setuptools import find_packages, setup

setup(
    name="tds_pipelines",
    version="0.1.0",
    description="TDS: keeps an ERP's PostgreSQL database in sync with Zoho Books and Zoho Inventory",
    packages=find_packages(exclude=["tds_pipelines_tests"]),
    package_data={"tds_pipelines": ["erp/migrations/*.ini", "erp/migrations/*.mako"]},
    python_requires=">=3.11",
    install_requires=[
        # The Dagster family is pinned together: an unpinned dagster-postgres next to a newer
        # dagster resolves to an ancient release with an old psycopg2.
        "dagster==1.13.27",
        "dagster-webserver==1.13.27",
        "dagster-postgres==0.29.27",
        "sqlalchemy>=2.0,<2.2",
        "alembic>=1.13,<2",
        "requests>=2.31,<3",
        "pandas>=2.1",
        "fastapi>=0.110",
        "uvicorn>=0.29",
        # The webhook receiver: an async driver, and uvicorn's fast event loop and HTTP parser.
        "asyncpg>=0.29",
        "httptools>=0.6",
        "uvloop>=0.19; sys_platform != 'win32'",
    ],
    extras_require={
        # playwright drives the system's Chromium for docs/shots.py (never downloads a browser of its own).
        "dev": ["pytest>=8", "pytest-timeout>=2.3", "ruff>=0.6", "psutil>=5.9", "hypothesis>=6.100", "playwright>=1.40"]
    },
    entry_points={"console_scripts": ["tds=tds_pipelines.cli:main"]},
)
