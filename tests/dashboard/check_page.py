"""Drives the dashboard in real headless Chromium (chromedriver + selenium).

Usage: check_page.py URL SCREENSHOT NODES RC KILLED_NODE
Prints READY once the page lists NODES alive nodes, the RC, and a service
of the RC's name with an endpoint; scales the RC to 3 with the page's form
and prints SCALED once the table shows it; then waits for a line on stdin
(the test killed KILLED_NODE's peer), prints DOWN <seconds> once the page shows
that node Down, saves a screenshot and fails on any JavaScript console
error. Exits non-zero with the reason.
"""
import sys
import time

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

url, screenshot, nodes, rc, killed = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
LIMIT = 90  # seconds for each wait: the machine is loaded


def rows(driver, table):
    """(name, cells' text) of each row of one table, read in one script so
    the page's refresh cannot replace the rows halfway."""
    return driver.execute_script(
        "return Array.from(document.querySelectorAll('#' + arguments[0] + ' tbody tr[data-name]'))"
        ".map(tr => [tr.dataset.name, Array.from(tr.cells).map(td => td.textContent)]);",
        table)


def wait_for(what, check, driver):
    deadline = time.monotonic() + LIMIT
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    driver.save_screenshot(screenshot)
    sys.exit("timed out waiting for %s; page status: %s" % (what, driver.find_element(By.ID, "status").text))


def console_errors(driver):
    return [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]


options = webdriver.ChromeOptions()
options.binary_location = "/usr/bin/chromium"
for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1280,900"):
    options.add_argument(flag)
options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
try:
    driver.set_page_load_timeout(LIMIT)
    driver.get(url)

    def listed():
        node_rows = rows(driver, "nodes")
        alive = [n for n, cells in node_rows if cells[1] == "Alive"]
        rcs = [n for n, _ in rows(driver, "rcs")]
        endpoints = [cells[4] for n, cells in rows(driver, "services") if n == rc]
        return len(alive) == nodes and rc in rcs and endpoints and rc + "-0@" in endpoints[0]

    wait_for("%d alive nodes, rc %s and its service's endpoints" % (nodes, rc), listed, driver)
    pods = [n for n, _ in rows(driver, "pods")]
    print("READY nodes=%d pods=%s" % (nodes, ",".join(pods)), flush=True)

    # Scale the RC to 3 with the page's form, as a user would.
    driver.find_element(By.ID, "scale-rc").send_keys(rc)
    driver.find_element(By.ID, "scale-replicas").send_keys("3")
    driver.find_element(By.CSS_SELECTOR, "#scale button").click()
    wait_for("the scale's answer", lambda: "scaled to 3" in driver.find_element(By.ID, "scale-result").text, driver)

    def desired_three():
        return any(n == rc and cells[1] == "3" for n, cells in rows(driver, "rcs"))

    wait_for("rc %s desired 3 in the table" % rc, desired_three, driver)
    print("SCALED", flush=True)

    sys.stdin.readline()
    killed_at = time.monotonic()

    def down():
        return any(n == killed and cells[1] == "Down" for n, cells in rows(driver, "nodes"))

    wait_for("node %s shown Down" % killed, down, driver)
    print("DOWN %.1f" % (time.monotonic() - killed_at), flush=True)
    driver.save_screenshot(screenshot)
    errors = console_errors(driver)
    if errors:
        sys.exit("JavaScript console errors: %s" % errors)
finally:
    driver.quit()
