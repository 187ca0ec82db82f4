"""Steps for the server under load (features/load.feature): a few lines each over the driver."""

from behave import then, when

from support import expect


@when("several clients send it a mixed workload for a while, some hanging up mid-stream")
def step_load(context):
    context.sut.run_load()


@then("the server kept its pace and its memory did not grow beyond the bound")
def step_steady(context):
    found = context.sut.load_problems(answers=False)
    expect.that(not found, "\n".join(found))


@then("every request was answered without error and every answer was right")
def step_all_right(context):
    found = context.sut.load_problems(answers=True)
    expect.that(not found, "\n".join(found))
