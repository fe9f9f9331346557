"""What the pages say in words: the question as the customer read it, panel faults."""

import pytest

from console import fmt

pytestmark = pytest.mark.e2e


def test_a_poll_shows_the_question_with_the_employee_as_the_customer_read_it(client):
    expert = client("expert")
    status, _h, body = expert.get("/review/poll/msk/desk-1/3")
    assert status == 200
    assert "Are you satisfied with the work of Елена Иванова?" in body and "{employee}" not in body


def test_panel_faults_are_said_in_words(client):
    status, _h, body = client("tech").get("/fleet")
    assert status == 200 and "stuck button: Yes" in body and "stuck:yes" not in body
    assert fmt.fault("stuck:seller", "ru") == "залипла кнопка продавца"
    assert fmt.fault("cfg_write", "en") == "the config could not be kept on the panel"
    assert fmt.fault("new_code", "en") == "new_code"  # a code this console does not know yet
