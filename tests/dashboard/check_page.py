"""Drives the dashboard in real headless Chromium (chromedriver + selenium).

Usage: check_page.py URL SCREENSHOT PHONE_SCREENSHOT NODES RC DRAINED KILLED MANIFEST NEW_IMAGE

Works the page as a user would and prints one line per step; after the
steps the test checks against another peer (SCALED, APPLIED, UPDATED,
DELETED, DRAINED) it waits for a line on stdin before going on:

  READY pods=...      the page lists NODES alive nodes with their engines
                      Ready, the RC with an age on each pod, and a service
                      of the RC's name with an endpoint
  LOGS <line>         a click on RC-0 shows its log lines, and new ones follow
  SCALED              the RC form scaled RC to 3; the table and the event
                      stream show it
  APPLIED NAME        the manifest file's text, typed into the apply box,
                      was applied (its one RC is NAME)
  UPDATED             a rolling update of NAME to NEW_IMAGE from the form;
                      the table shows the new image
  DELETED             NAME deleted with the form (confirmation accepted)
  DRAINED             DRAINED's Drain button: the row shows it drained
  PHONE <widths>      at 390x844 the page body does not scroll sideways
  WATCHING            the page notes when each node row changes state
  DOWN <ms> <ms>      (after a line on stdin: the test killed KILLED's peer)
                      the page shows KILLED Down, its engine Unknown; the
                      wall clock (Unix ms, Date.now() in the page) when the
                      page first showed it not Alive, then Down

Saves both screenshots and fails on any JavaScript console error. Exits
non-zero with the reason.
"""
import re
import sys
import time

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

(url, screenshot, phone_screenshot, nodes, rc, drained, killed, manifest, new_image) = sys.argv[1:10]
nodes = int(nodes)
LIMIT = 90  # seconds for each wait: the machine is loaded
with open(manifest, encoding="utf-8") as f:
    manifest_text = f.read()
new_rc = next(line.split(":", 1)[1].strip() for line in manifest_text.splitlines() if line.startswith("  name:"))


def rows(driver, table):
    """(name, cells' text) of each row of one table, read in one script so
    the page's refresh cannot replace the rows halfway."""
    return driver.execute_script(
        "return Array.from(document.querySelectorAll('#' + arguments[0] + ' tbody tr[data-name]'))"
        ".map(tr => [tr.dataset.name, Array.from(tr.cells).map(td => td.textContent)]);",
        table)


def click_row(driver, table, name, button=None):
    """Clicks a row (or a button of it) in one script: the 2 s refresh
    replaces rows, so a found element may be gone by the click."""
    selector = "tr[data-name=\"%s\"]" % name + (" button[data-action=%s]" % button if button else "")
    found = driver.execute_script(
        "const e = document.querySelector('#' + arguments[0] + ' tbody ' + arguments[1]);"
        "if (e) e.click(); return e !== null;", table, selector)
    if not found:
        fail(driver, "no %s in table %s: %s" % (selector, table, rows(driver, table)))


def fail(driver, why):
    driver.save_screenshot(screenshot)
    sys.exit("%s; page status: %s" % (why, driver.find_element(By.ID, "status").text))


def wait_for(what, check, driver):
    deadline = time.monotonic() + LIMIT
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    fail(driver, "timed out waiting for " + what)


def text_of(driver, element_id):
    return driver.find_element(By.ID, element_id).text


def set_field(driver, element_id, value):
    field = driver.find_element(By.ID, element_id)
    field.clear()
    field.send_keys(value)


def step(line, wait=False):
    print(line, flush=True)
    if wait and not sys.stdin.readline():
        sys.exit("the test went away after " + line)


def ticks(text):
    return [line for line in text.splitlines() if line.startswith("tick ")]


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
    # Every node's engine Ready; each pod of the RC has an age (`42s`).
    engines = [cells[2] for _, cells in rows(driver, "nodes")]
    if engines != ["Ready"] * nodes:
        fail(driver, "engines not all Ready: %s" % engines)
    wait_for("an age on each pod of %s" % rc,
             lambda: all(re.fullmatch(r"[0-9]+[smhd]", cells[5])
                         for n, cells in rows(driver, "pods") if n.startswith(rc + "-")), driver)
    step("READY pods=%s" % ",".join(n for n, _ in rows(driver, "pods")))

    # A pod's logs: its recent lines, then new ones while the view is open.
    click_row(driver, "pods", rc + "-0")
    wait_for("log lines of %s-0" % rc, lambda: len(ticks(text_of(driver, "logs"))) >= 2, driver)
    seen = len(ticks(text_of(driver, "logs")))
    wait_for("followed log lines", lambda: len(ticks(text_of(driver, "logs"))) >= seen + 3, driver)
    step("LOGS " + ticks(text_of(driver, "logs"))[-1])
    driver.find_element(By.ID, "logs-close").click()

    # Scale with the RC form, as a user would; the event stream tells it.
    click_row(driver, "rcs", rc)
    set_field(driver, "rc-replicas", "3")
    driver.find_element(By.ID, "rc-scale").click()
    wait_for("the scale's answer", lambda: "scaled to 3" in text_of(driver, "rc-result"), driver)
    wait_for("rc %s desired 3 in the table" % rc,
             lambda: any(n == rc and cells[1] == "3" for n, cells in rows(driver, "rcs")), driver)
    wait_for("the Scaled event of rc/%s" % rc,
             lambda: any(cells[2] == "Scaled" and cells[3] == "rc/" + rc and "to 3" in cells[4]
                         for _, cells in rows(driver, "events")), driver)
    step("SCALED", wait=True)

    # Apply a manifest typed into the box.
    driver.find_element(By.ID, "apply-text").send_keys(manifest_text)
    driver.find_element(By.CSS_SELECTOR, "#apply button").click()
    wait_for("the apply's answer",
             lambda: "replicationcontroller/%s created" % new_rc in text_of(driver, "apply-result"), driver)
    wait_for("rc %s in the table" % new_rc, lambda: any(n == new_rc for n, _ in rows(driver, "rcs")), driver)
    step("APPLIED " + new_rc, wait=True)

    # Rolling update to another image: a row click fills the form.
    click_row(driver, "rcs", new_rc)
    wait_for("the form filled", lambda: driver.find_element(By.ID, "rc-name").get_attribute("value") == new_rc, driver)
    set_field(driver, "rc-image", new_image)
    driver.find_element(By.ID, "rc-update").click()
    wait_for("the rolling update's answer", lambda: "rolling update to " + new_image in text_of(driver, "rc-result"), driver)
    wait_for("image %s of %s in the table" % (new_image, new_rc),
             lambda: any(n == new_rc and cells[5] == new_image for n, cells in rows(driver, "rcs")), driver)
    step("UPDATED", wait=True)

    # Delete, accepting the page's confirmation.
    click_row(driver, "rcs", new_rc)
    driver.find_element(By.ID, "rc-delete").click()
    WebDriverWait(driver, 10).until(lambda d: d.switch_to.alert).accept()
    wait_for("the delete's answer", lambda: new_rc + " deleted" in text_of(driver, "rc-result"), driver)
    wait_for("rc %s gone from the table" % new_rc, lambda: all(n != new_rc for n, _ in rows(driver, "rcs")), driver)
    step("DELETED", wait=True)

    # Drain a node with its row's button: cordoned, then counted down to empty.
    click_row(driver, "nodes", drained, "drain")
    wait_for("node %s drained" % drained,
             lambda: any(n == drained and cells[3] == "drained" for n, cells in rows(driver, "nodes")), driver)
    step("DRAINED", wait=True)

    # A phone: the body never scrolls sideways; wide tables scroll in their box.
    driver.set_window_size(390, 844)
    time.sleep(2.5)  # a refresh at the new width
    widths = driver.execute_script(
        "const d = document.documentElement;"
        "const boxes = Array.from(document.querySelectorAll('.scroll'));"
        "return [d.scrollWidth, d.clientWidth, document.body.scrollWidth,"
        " boxes.filter(b => b.scrollWidth > b.clientWidth).length];")
    driver.save_screenshot(phone_screenshot)
    if widths[0] > widths[1] or widths[2] > widths[1]:
        fail(driver, "at phone width the page scrolls sideways: document %d, body %d, viewport %d"
             % (widths[0], widths[2], widths[1]))
    if widths[3] == 0:
        fail(driver, "at phone width no table scrolls in its own box: the test proves nothing")
    step("PHONE document=%d viewport=%d boxes-scrolling=%d" % (widths[0], widths[1], widths[3]))
    driver.set_window_size(1280, 900)

    # When the page itself first shows each (state, engine) of each node
    # row: noted by the page at the change, so this script's polling adds
    # nothing to the times the test reads.
    driver.execute_script(
        "window.rowShown = {};"
        "const note = () => document.querySelectorAll('#nodes tbody tr[data-name]').forEach(tr => {"
        "  const key = tr.dataset.name + ' ' + tr.cells[1].textContent + ' ' + tr.cells[2].textContent;"
        "  if (!(key in window.rowShown)) window.rowShown[key] = Date.now(); });"
        "note();"
        "new MutationObserver(note).observe(document.getElementById('nodes'), {childList: true, subtree: true});")
    step("WATCHING", wait=True)
    # Its engine's last report is not current any more: Unknown, not Ready.
    wait_for("node %s shown Down with its engine Unknown" % killed,
             lambda: any(n == killed and cells[1] == "Down" and cells[2] == "Unknown"
                         for n, cells in rows(driver, "nodes")), driver)
    shown = driver.execute_script("return window.rowShown;")
    down = shown[killed + " Down Unknown"]
    not_alive = min(ms for key, ms in shown.items()
                    if key.startswith(killed + " ") and not key.startswith(killed + " Alive "))
    step("DOWN %d %d" % (not_alive, down))
    driver.save_screenshot(screenshot)
    errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    if errors:
        sys.exit("JavaScript console errors: %s" % errors)
finally:
    driver.quit()
