"""Headless Chromium (Debian's ``chromium`` + ``chromium-driver``) driven by Selenium, for the
console's browser tests.

The console is served by uvicorn inside the test's event loop, so every Selenium call (which
blocks) runs in a thread: :class:`Browser` offers them as coroutines. A missing browser is a
test *failure* naming the packages to install, never a skip (``.ci/run`` and the README's
test command install them). Screenshots go to :func:`artifacts_dir`, printed by the tests.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement

T = TypeVar("T")

CHROMIUM = os.environ.get("DAGNATS_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("DAGNATS_CHROMEDRIVER", "/usr/bin/chromedriver")
ROOT = Path(__file__).resolve().parent.parent.parent
POLL_S = 0.05


def artifacts_dir() -> Path:
    """Where screenshots and figures go: ``$DAGNATS_TEST_ARTIFACTS`` or tests/artifacts."""
    path = Path(os.environ.get("DAGNATS_TEST_ARTIFACTS", ROOT / "tests" / "artifacts")) / "console"
    path.mkdir(parents=True, exist_ok=True)
    return path


def require_browser() -> None:
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not (Path(p).exists() or shutil.which(p))]
    if missing:
        pytest.fail(
            f"the console's browser tests need {' and '.join(missing)}: "
            "apt-get install -y chromium chromium-driver (.ci/run does it)",
            pytrace=False,
        )


def new_driver() -> webdriver.Chrome:
    require_browser()
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1400,1000",
        "--disable-extensions",
        "--no-first-run",
    ):
        options.add_argument(arg)
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


class Browser:
    """One headless Chromium; every call runs in a thread and returns a coroutine."""

    def __init__(self, driver: webdriver.Chrome, base_url: str) -> None:
        self.driver = driver
        self.base_url = base_url

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.to_thread(fn, *args)

    async def open(self, path: str) -> None:
        await self.call(self.driver.get, self.base_url + path)

    async def go(self, fragment: str) -> None:
        """Navigate inside the page (hash route): no reload."""
        await self.call(self.driver.execute_script, "location.hash = arguments[0]", fragment)

    async def js(self, script: str, *args: Any) -> Any:
        return await self.call(self.driver.execute_script, script, *args)

    async def wait(
        self, css: str, *, timeout_s: float = 10.0, where: str | None = None
    ) -> WebElement:
        """The first element matching ``css`` (whose text contains ``where``), waiting for it."""

        def find() -> WebElement:
            deadline = time.monotonic() + timeout_s
            while True:
                try:
                    for el in self.driver.find_elements(By.CSS_SELECTOR, css):
                        # textContent: the text of folded (<details>) parts counts too
                        if where is None or where in (el.get_attribute("textContent") or ""):
                            return el
                except (StaleElementReferenceException, WebDriverException):
                    pass  # the page re-rendered under us: look again
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"no {css!r}{f' with {where!r}' if where else ''} within {timeout_s}s"
                    )
                time.sleep(POLL_S)

        return await self.call(find)

    async def all(self, css: str) -> list[WebElement]:
        return await self.call(self.driver.find_elements, By.CSS_SELECTOR, css)

    async def click(self, css: str, *, timeout_s: float = 10.0) -> None:
        """Click the element matching ``css``; found again if the page re-rendered it."""
        deadline = time.monotonic() + timeout_s
        while True:
            el = await self.wait(css, timeout_s=max(deadline - time.monotonic(), 0.1))
            try:
                await self.call(el.click)
                return
            except StaleElementReferenceException:
                if time.monotonic() > deadline:
                    raise

    async def type(self, css: str, text: str) -> None:
        el = await self.wait(css)
        await self.call(el.send_keys, text)

    async def screenshot(self, name: str) -> Path:
        path = artifacts_dir() / f"{name}.png"
        await self.call(self.driver.save_screenshot, str(path))
        return path

    async def close(self) -> None:
        await self.call(self.driver.quit)
