"""The dashboard with a read-only API token, in real headless Chromium.

Usage: check_read_only.py URL TOKEN RC SCREENSHOT
Enters TOKEN in the page's token form, waits until the page lists RC (reads
work), types RC and 3 replicas in the RC form, clicks Scale and prints REFUSED <message> once the
page shows why the write was refused (403). Fails on any JavaScript
console error other than the browser's own notes of refused fetches.
Exits non-zero with the reason.
"""
import sys
import time

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

url, token, rc, screenshot = sys.argv[1:5]
LIMIT = 90  # seconds for each wait: the machine is loaded


def wait_for(what, check, driver):
    deadline = time.monotonic() + LIMIT
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    driver.save_screenshot(screenshot)
    sys.exit("timed out waiting for %s; page status: %s" % (what, driver.find_element(By.ID, "status").text))


options = webdriver.ChromeOptions()
options.binary_location = "/usr/bin/chromium"
for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1280,900"):
    options.add_argument(flag)
options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
try:
    driver.set_page_load_timeout(LIMIT)
    driver.get(url)
    wait_for("the token form", lambda: driver.find_element(By.ID, "token").is_displayed(), driver)
    driver.find_element(By.ID, "token").send_keys(token)
    driver.find_element(By.CSS_SELECTOR, "#login button").click()

    def listed():
        return driver.execute_script(
            "return Array.from(document.querySelectorAll('#rcs tbody tr[data-name]')).map(tr => tr.dataset.name);"
        ).count(rc) == 1

    wait_for("rc %s listed with the read-only token" % rc, listed, driver)
    driver.find_element(By.ID, "rc-name").send_keys(rc)
    driver.find_element(By.ID, "rc-replicas").send_keys("3")
    driver.find_element(By.ID, "rc-scale").click()
    result = lambda: driver.find_element(By.ID, "rc-result").text
    wait_for("the refusal of the scale", lambda: "not allowed with this token" in result(), driver)
    print("REFUSED " + result(), flush=True)
    driver.save_screenshot(screenshot)
    # The browser notes each refused fetch (401 before the token, the 403)
    # as a network error; anything else is a real error.
    refused = ("status of 401", "status of 403")
    errors = [e for e in driver.get_log("browser")
              if e["level"] == "SEVERE"
              and not (e.get("source") == "network" and any(r in e["message"] for r in refused))]
    if errors:
        sys.exit("JavaScript console errors: %s" % errors)
finally:
    driver.quit()
