"""Analytics: mirror rows, typed DataFrames and KPI functions (plain pandas, no Streamlit)."""
