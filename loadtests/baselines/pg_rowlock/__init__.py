"""omnistock's reserve on Postgres row locks (SELECT ... FOR UPDATE), served over HTTP.

python -m loadtests.baselines.pg_rowlock seed --database-url URL --location L --sku S --on-hand 10000
python -m loadtests.baselines.pg_rowlock serve --database-url URL --port 8100
python -m loadtests.baselines.pg_rowlock check --database-url URL --location L --sku S
"""
