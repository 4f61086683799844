"""Clinic EHR Dashboard: the entry point (``streamlit run Home.py``).

Run by ``streamlit run``, this file is first imported as a module to find ``app``: the
``st.App`` that serves Streamlit together with our own routes (sign-in, EHR OAuth callback,
health) behind the sign-in gate. Streamlit then executes it as ``__main__`` for every browser
session, which renders the app through ``ui.shell``.
"""

import streamlit as st
from starlette.middleware import Middleware

from ui import shell, wiring
from ui.gate import SignInGate
from ui.routes import routes

if __name__ == "__main__":
    shell.run()
else:
    app = st.App(
        "Home.py",
        routes=routes(),
        middleware=[Middleware(SignInGate)],
        lifespan=wiring.lifespan,
    )
