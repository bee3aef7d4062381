"""The page in a real browser: a Streamlit server on loopback and headless Chromium, shared by
the browser tests (tests/test_browser.py) and the load benchmark (`python -m webtest.load`)."""
