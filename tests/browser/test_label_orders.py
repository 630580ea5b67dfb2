"""Pick a queue order on the label page in a real browser and label on in it from the keyboard."""

from __future__ import annotations

import pytest

from app.config import Settings
from app.db.engine import Database
from tests.browser.test_label_keyboard import _showing
from tests.factories import classes_and_images
from tests.labelling.test_orders import write_analysis

pytestmark = pytest.mark.browser


def test_picking_the_diverse_order_labels_on_in_it_and_a_fallback_is_said(live_server, page):
    base, data = live_server
    ids = classes_and_images(base, 6)
    url = f"sqlite:///{data / 'loupe.db'}"
    db = Database(url)
    try:
        write_analysis(db, Settings(data=data, database_url=url), diverse=[ids[4], ids[1], ids[5]], analysed=ids)
    finally:
        db.dispose()

    page.goto(f"{base}/label")
    page.keyboard.type("ana")
    page.keyboard.press("Enter")
    _showing(page, ids[0])                                   # import order by default
    assert page.text_content('.order b[aria-current="true"]') == "import order"

    page.click('.order a[data-order="diverse"]')
    page.wait_for_url(f"{base}/label?order=diverse")
    _showing(page, ids[4])
    assert page.locator(".order-note").count() == 0          # an analysis exists: nothing to explain
    page.keyboard.press("1")
    _showing(page, ids[1])
    page.keyboard.press("s")                                 # a skip goes on in the order too
    _showing(page, ids[5])
    page.keyboard.press("2")
    _showing(page, ids[0])                                   # the order is done: the rest in import order

    page.click('.order a[data-order="weakest-source"]')
    page.wait_for_url(f"{base}/label?order=weakest-source")
    _showing(page, ids[0])
    assert page.text_content(".order-note") == "No out-of-sample accuracy per source yet, so this is import order."
